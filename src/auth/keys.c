/*
 * keys.c - Ed25519 key files (see nana_keys.h). The PKCS#8 form of an
 * Ed25519 key is a fixed 48-byte DER structure (RFC 8410): a 16-byte
 * prefix naming the algorithm, then the 32-byte seed. The OpenSSH public
 * key is base64 of two length-prefixed strings: "ssh-ed25519" and the key.
 */
#include "auth/nana_keys.h"

#include "util/nana_err.h"
#include "util/nana_file.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DER: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } } */
static const uint8_t PKCS8_PREFIX[16] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                         0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
static const char PEM_BEGIN[] = "-----BEGIN PRIVATE KEY-----";
static const char PEM_END[] = "-----END PRIVATE KEY-----";
static const char SSH_TYPE[] = "ssh-ed25519";
#define SSH_BLOB_LEN (4 + 11 + 4 + 32)

/* The OpenSSH wire blob of |pk|. */
static void ssh_blob(const uint8_t pk[NANA_ED25519_PUBLIC], uint8_t out[SSH_BLOB_LEN])
{
    static const uint8_t head[4 + 11 + 4] = {0,   0,   0,   11,  's', 's', 'h', '-', 'e', 'd',
                                             '2', '5', '5', '1', '9', 0,   0,   0,   32};
    memcpy(out, head, sizeof(head));
    memcpy(out + sizeof(head), pk, NANA_ED25519_PUBLIC);
}

int nana_ed25519_format_openssh(const uint8_t pk[NANA_ED25519_PUBLIC], const char *comment,
                                char *out, size_t cap)
{
    uint8_t blob[SSH_BLOB_LEN];
    ssh_blob(pk, blob);
    char b64[sodium_base64_ENCODED_LEN(SSH_BLOB_LEN, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof(b64), blob, sizeof(blob), sodium_base64_VARIANT_ORIGINAL);
    int n = snprintf(out, cap, "%s %s%s%s", SSH_TYPE, b64, comment && *comment ? " " : "",
                     comment ? comment : "");
    if (n < 0 || (size_t)n >= cap) return nana_err_set(NANA_ERR_TOOBIG, "public key line too long");
    return NANA_OK;
}

int nana_ed25519_generate_files(const char *priv_path, const char *pub_path, const char *comment,
                                int overwrite)
{
    if (sodium_init() < 0) return nana_err_set(NANA_ERR_INTERNAL, "libsodium failed to start");
    uint8_t pk[NANA_ED25519_PUBLIC], sk[NANA_ED25519_SECRET], der[48];
    crypto_sign_keypair(pk, sk);
    memcpy(der, PKCS8_PREFIX, sizeof(PKCS8_PREFIX));
    memcpy(der + sizeof(PKCS8_PREFIX), sk, 32); /* the seed */
    char b64[sodium_base64_ENCODED_LEN(sizeof(der), sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof(b64), der, sizeof(der), sodium_base64_VARIANT_ORIGINAL);
    char pem[160], line[NANA_OPENSSH_LINE_MAX + 2];
    int pn = snprintf(pem, sizeof(pem), "%s\n%s\n%s\n", PEM_BEGIN, b64, PEM_END);
    int rc = nana_ed25519_format_openssh(pk, comment, line, sizeof(line) - 1);
    if (!rc) {
        size_t ln = strlen(line);
        line[ln++] = '\n';
        rc = nana_file_write_pair(priv_path, pem, (size_t)pn, "private key file", pub_path, line,
                                  ln, "public key file", overwrite);
    }
    sodium_memzero(sk, sizeof(sk));
    sodium_memzero(der, sizeof(der));
    sodium_memzero(b64, sizeof(b64));
    sodium_memzero(pem, sizeof(pem));
    return rc;
}

int nana_ed25519_parse_openssh(const char *text, size_t len, uint8_t pk[NANA_ED25519_PUBLIC])
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t'))
        i++;
    size_t tl = sizeof(SSH_TYPE) - 1;
    if (len - i < tl + 1 || memcmp(text + i, SSH_TYPE, tl) != 0 ||
        (text[i + tl] != ' ' && text[i + tl] != '\t'))
        return nana_err_set(NANA_ERR_INVALID, "not an ssh-ed25519 public key");
    i += tl;
    while (i < len && (text[i] == ' ' || text[i] == '\t'))
        i++;
    size_t start = i;
    while (i < len && text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
        i++;
    uint8_t blob[SSH_BLOB_LEN + 1];
    size_t bl = 0;
    if (sodium_base642bin(blob, sizeof(blob), text + start, i - start, NULL, &bl, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        bl != SSH_BLOB_LEN)
        return nana_err_set(NANA_ERR_INVALID,
                            "the ssh-ed25519 key is not valid base64 of 51 bytes");
    uint8_t want[SSH_BLOB_LEN];
    uint8_t zero[NANA_ED25519_PUBLIC] = {0};
    ssh_blob(zero, want);
    if (memcmp(blob, want, SSH_BLOB_LEN - NANA_ED25519_PUBLIC) != 0)
        return nana_err_set(NANA_ERR_INVALID, "the ssh-ed25519 key blob is malformed");
    memcpy(pk, blob + SSH_BLOB_LEN - NANA_ED25519_PUBLIC, NANA_ED25519_PUBLIC);
    return NANA_OK;
}

int nana_ed25519_read_public(const char *path, uint8_t pk[NANA_ED25519_PUBLIC])
{
    char *buf;
    size_t n = 0;
    int rc = nana_file_read(path, "public key file", 4096, &buf, &n);
    if (rc) return rc;
    for (char *line = buf; line < buf + n;) {
        char *nl = memchr(line, '\n', (size_t)(buf + n - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + n - line);
        size_t k = 0;
        while (k < ll && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
            k++;
        if (k < ll && line[k] != '#') {
            rc = nana_ed25519_parse_openssh(line, ll, pk);
            free(buf);
            if (rc) {
                char why[NANA_ERRMSG_MAX]; /* the detail must not be formatted into itself */
                snprintf(why, sizeof(why), "%s", nana_errmsg());
                return nana_err_set(rc, "%s: %s", path, why);
            }
            return NANA_OK;
        }
        line += ll + 1;
    }
    free(buf);
    return nana_err_set(NANA_ERR_INVALID, "%s holds no public key", path);
}

int nana_ed25519_read_private(const char *path, uint8_t sk[NANA_ED25519_SECRET])
{
    if (sodium_init() < 0) return nana_err_set(NANA_ERR_INTERNAL, "libsodium failed to start");
    char *buf;
    size_t n = 0;
    int rc = nana_file_read(path, "private key file", 1024, &buf, &n);
    if (rc) return rc;
    const char *b = strstr(buf, PEM_BEGIN);
    const char *e = b ? strstr(b, PEM_END) : NULL;
    uint8_t der[49];
    size_t dl = 0;
    if (!b || !e)
        rc = nana_err_set(NANA_ERR_INVALID, "%s is not a PEM private key", path);
    else if (sodium_base642bin(der, sizeof(der), b + sizeof(PEM_BEGIN) - 1,
                               (size_t)(e - b) - (sizeof(PEM_BEGIN) - 1), " \t\r\n", &dl, NULL,
                               sodium_base64_VARIANT_ORIGINAL) != 0 ||
             dl != 48 || memcmp(der, PKCS8_PREFIX, sizeof(PKCS8_PREFIX)) != 0)
        rc = nana_err_set(NANA_ERR_INVALID, "%s is not an unencrypted PKCS#8 Ed25519 key", path);
    if (!rc) {
        uint8_t pk[NANA_ED25519_PUBLIC];
        crypto_sign_seed_keypair(pk, sk, der + sizeof(PKCS8_PREFIX));
    }
    sodium_memzero(der, sizeof(der));
    sodium_memzero(buf, n);
    free(buf);
    return rc;
}
