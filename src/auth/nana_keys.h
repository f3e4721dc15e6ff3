/*
 * nana_keys.h - Ed25519 keys in the files NanaSQLite uses: the private key
 * as unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----", RFC 8410), the
 * public key as one OpenSSH line ("ssh-ed25519 AAAA... comment"). Signing
 * and verifying are libsodium's; this module only reads and writes the
 * formats. Private keys are written 0600 and wiped from memory after use.
 *
 * Errors: 0 or a negative NANA_ERR_* with a detail in nana_errmsg(); the
 * detail never contains key material.
 */
#ifndef NANA_KEYS_H
#define NANA_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define NANA_ED25519_PUBLIC   32 /* public key bytes */
#define NANA_ED25519_SECRET   64 /* libsodium secret key: seed || public key */
#define NANA_OPENSSH_LINE_MAX 256

/*
 * Makes a new key pair and writes |priv_path| (PKCS#8 PEM, 0600) and
 * |pub_path| (OpenSSH line ending in |comment|, 0644). Without |overwrite|
 * an existing file is refused (NANA_ERR_INVALID "... exists"). Errors as
 * nana_file_write_pair.
 */
int nana_ed25519_generate_files(const char *priv_path, const char *pub_path, const char *comment,
                                int overwrite);

/* Formats |pk| as an OpenSSH public key line (no newline) into |out|;
 * NANA_ERR_TOOBIG if |cap| is too small. */
int nana_ed25519_format_openssh(const uint8_t pk[NANA_ED25519_PUBLIC], const char *comment,
                                char *out, size_t cap);

/* Parses "ssh-ed25519 <base64> [comment]" (leading and trailing blanks
 * allowed) into |pk|; NANA_ERR_INVALID for anything else, including other
 * key types. */
int nana_ed25519_parse_openssh(const char *text, size_t len, uint8_t pk[NANA_ED25519_PUBLIC]);

/* Reads the first key line of an OpenSSH public key file (blank lines and
 * '#' comments skipped). */
int nana_ed25519_read_public(const char *path, uint8_t pk[NANA_ED25519_PUBLIC]);

/* Reads a PKCS#8 PEM Ed25519 private key into a libsodium secret key. */
int nana_ed25519_read_private(const char *path, uint8_t sk[NANA_ED25519_SECRET]);

#endif
