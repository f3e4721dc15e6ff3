/*
 * nana_file.h - writing secret files safely, and errno as a NANA error.
 *
 * A secret (a private key) is never readable by anyone but its owner, not
 * even for an instant: it is created 0600 (O_EXCL, or a mkostemp temporary
 * renamed into place). Its public companion (certificate, public key) is
 * written beside it 0644. Both are fsync'd. Either both files end up
 * written or neither is left behind.
 */
#ifndef NANA_FILE_H
#define NANA_FILE_H

#include <stddef.h>

/* Turns an errno from |what| on |path| into a NANA code (NOTFOUND, PERM,
 * NOMEM, READONLY, FULL, else IO) with the detail "what path: strerror". */
int nana_errno_err(int err, const char *what, const char *path);

/* NANA_ERR_INVALID "<what> <path> exists" if |path| names anything, even a
 * dangling symlink; else 0. */
int nana_file_refuse_existing(const char *path, const char *what);

/*
 * Writes |secret| to |secret_path| (0600) and |pub| to |pub_path| (0644).
 * Without |overwrite| both are created with O_EXCL and an existing file is
 * refused ("<what> <path> exists", NANA_ERR_INVALID); with it each is
 * written to a temporary file and renamed over the old one, secret first.
 * On failure no new file is left (if the second rename fails, the renamed
 * secret is removed too). |secret_what| and |pub_what| name the files in
 * messages ("key file"). Errors as nana_errno_err.
 */
int nana_file_write_pair(const char *secret_path, const void *secret, size_t secret_len,
                         const char *secret_what, const char *pub_path, const void *pub,
                         size_t pub_len, const char *pub_what, int overwrite);

/*
 * Reads a whole regular file of 1 to |max| bytes into *out: malloc'd,
 * NUL-terminated, owned by the caller (who wipes it first if it may hold a
 * secret). |what| names the file in messages. NANA_ERR_INVALID for a file
 * that is empty, too large or not regular; otherwise as nana_errno_err.
 */
int nana_file_read(const char *path, const char *what, size_t max, char **out, size_t *len);

#endif
