/*
 * nana_file.c - secret files written so that nobody else can read them, and
 * errno turned into NANA errors (see nana_file.h).
 */
#include "util/nana_file.h"

#include "util/nana_err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

int nana_errno_err(int err, const char *what, const char *path)
{
    int code = NANA_ERR_IO;
    if (err == ENOENT || err == ENOTDIR)
        code = NANA_ERR_NOTFOUND;
    else if (err == EACCES || err == EPERM)
        code = NANA_ERR_PERM;
    else if (err == ENOMEM)
        code = NANA_ERR_NOMEM;
    else if (err == EROFS)
        code = NANA_ERR_READONLY;
    else if (err == ENOSPC || err == EDQUOT)
        code = NANA_ERR_FULL;
    return nana_err_set(code, "%s %s: %s", what, path, strerror(err));
}

int nana_file_refuse_existing(const char *path, const char *what)
{
    struct stat st;
    if (lstat(path, &st) == 0) return nana_err_set(NANA_ERR_INVALID, "%s %s exists", what, path);
    return 0;
}

/* Writes all of |data| to |fd| and syncs it. */
static int write_all(int fd, const void *data, size_t len, const char *path)
{
    const unsigned char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return nana_errno_err(errno, "writing", path);
        off += (size_t)n;
    }
    if (fsync(fd) != 0) return nana_errno_err(errno, "syncing", path);
    return 0;
}

/* Creates |path| with O_EXCL and exactly |mode| (fchmod undoes the umask);
 * returns the descriptor, or a negative code ("... exists" if it exists). */
static int create_excl(const char *path, mode_t mode, const char *what)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST) return nana_err_set(NANA_ERR_INVALID, "%s %s exists", what, path);
        return nana_errno_err(errno, "creating", path);
    }
    if (fchmod(fd, mode) != 0) {
        int err = errno;
        close(fd);
        unlink(path);
        return nana_errno_err(err, "chmod", path);
    }
    return fd;
}

/* Creates both files (empty) before writing either, so an existing public
 * file never leaves a new secret behind; on failure both are removed. */
static int write_new(const char *spath, const void *s, size_t slen, const char *swhat,
                     const char *ppath, const void *p, size_t plen, const char *pwhat)
{
    int sfd = create_excl(spath, 0600, swhat);
    if (sfd < 0) return sfd;
    int pfd = create_excl(ppath, 0644, pwhat);
    if (pfd < 0) {
        close(sfd);
        unlink(spath);
        return pfd;
    }
    int rc = write_all(sfd, s, slen, spath);
    if (rc == 0) rc = write_all(pfd, p, plen, ppath);
    if (close(sfd) != 0 && rc == 0) rc = nana_errno_err(errno, "closing", spath);
    if (close(pfd) != 0 && rc == 0) rc = nana_errno_err(errno, "closing", ppath);
    if (rc) {
        unlink(spath);
        unlink(ppath);
    }
    return rc;
}

/* Writes |data| to a new temporary file "<path>.tmpXXXXXX" with exactly
 * |mode| (mkostemp creates it 0600). The malloc'd name goes to *tmp_out,
 * owned by the caller; on failure the file is gone and *tmp_out is NULL. */
static int write_temp(const char *path, const void *data, size_t len, mode_t mode, char **tmp_out)
{
    *tmp_out = NULL;
    size_t n = strlen(path) + sizeof(".tmpXXXXXX");
    char *tmp = malloc(n);
    if (!tmp) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int rc = nana_errno_err(errno, "creating a temporary file for", path);
        free(tmp);
        return rc;
    }
    int rc = 0;
    if (fchmod(fd, mode) != 0) rc = nana_errno_err(errno, "chmod", tmp);
    if (rc == 0) rc = write_all(fd, data, len, tmp);
    if (close(fd) != 0 && rc == 0) rc = nana_errno_err(errno, "closing", tmp);
    if (rc) {
        unlink(tmp);
        free(tmp);
        return rc;
    }
    *tmp_out = tmp;
    return 0;
}

/* Replaces both files: writes both temporaries, then renames the secret and
 * the public file into place, so a failure before the renames changes
 * nothing. If only the second rename fails, the new secret is removed too. */
static int write_replace(const char *spath, const void *s, size_t slen, const char *ppath,
                         const void *p, size_t plen)
{
    char *stmp = NULL, *ptmp = NULL;
    int rc = write_temp(spath, s, slen, 0600, &stmp);
    if (rc == 0) rc = write_temp(ppath, p, plen, 0644, &ptmp);
    if (rc == 0) {
        if (rename(stmp, spath) == 0) {
            free(stmp);
            stmp = NULL;
        } else {
            rc = nana_errno_err(errno, "renaming over", spath);
        }
    }
    if (rc == 0) {
        if (rename(ptmp, ppath) == 0) {
            free(ptmp);
            ptmp = NULL;
        } else {
            rc = nana_errno_err(errno, "renaming over", ppath);
            unlink(spath); /* the new secret is useless without its companion */
        }
    }
    if (stmp) unlink(stmp); /* still set only on failure */
    if (ptmp) unlink(ptmp);
    free(stmp);
    free(ptmp);
    return rc;
}

int nana_file_write_pair(const char *secret_path, const void *secret, size_t secret_len,
                         const char *secret_what, const char *pub_path, const void *pub,
                         size_t pub_len, const char *pub_what, int overwrite)
{
    if (overwrite) return write_replace(secret_path, secret, secret_len, pub_path, pub, pub_len);
    return write_new(secret_path, secret, secret_len, secret_what, pub_path, pub, pub_len,
                     pub_what);
}

int nana_file_read(const char *path, const char *what, size_t max, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nana_errno_err(errno, what, path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return nana_errno_err(err, what, path);
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uintmax_t)st.st_size > max) {
        close(fd);
        return nana_err_set(NANA_ERR_INVALID, "%s %s: not a regular file of 1..%zu bytes", what,
                            path, max);
    }
    size_t want = (size_t)st.st_size;
    char *buf = malloc(want + 1);
    if (!buf) {
        close(fd);
        return nana_err_set(NANA_ERR_NOMEM, "%s %s: out of memory", what, path);
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* error, or the file shrank: use what we have */
        got += (size_t)n;
    }
    int err = errno;
    close(fd);
    if (got == 0) {
        free(buf);
        return nana_errno_err(err ? err : EIO, what, path);
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}
