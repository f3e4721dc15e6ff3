/*
 * toml_file.c - reading a configuration file for the parser (nana_toml.h).
 *
 * The file is opened once and everything is checked on that descriptor,
 * so what is checked is what is read: a regular file (a FIFO would block
 * the start, a folder or device is a mistake), not writable by every user
 * (anyone could then choose the server's keys and databases), and no
 * longer than the parser's limit. Its bytes are wiped before they are
 * freed: a file given by mistake may hold a secret.
 */
#include "config/nana_toml.h"

#include "util/nana_err.h"
#include "util/nana_file.h"
#include "util/nana_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Prefixes the current message with "<path>: ". */
static int with_path(int rc, const char *path)
{
    char msg[NANA_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    return nana_err_set(rc, "%s: %s", path, msg);
}

/*
 * Reads up to |n| bytes of |fd| into |buf|: how many it got (fewer if the
 * file ended sooner), or -1 with errno set.
 */
static ssize_t read_fd(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int nana_toml_load(const char *path, const nana_toml_limits *lim, nana_toml_doc **out)
{
    *out = NULL;
    nana_toml_limits l;
    if (lim)
        l = *lim;
    else
        nana_toml_limits_init(&l);
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return nana_errno_err(errno, "configuration file", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return nana_errno_err(e, "configuration file", path);
    }
    int rc = NANA_OK;
    if (!S_ISREG(st.st_mode))
        rc = nana_err_set(NANA_ERR_INVALID, "configuration file %s: not a regular file", path);
    else if (st.st_mode & S_IWOTH)
        rc = nana_err_set(NANA_ERR_INVALID,
                          "configuration file %s: writable by every user (mode %03o); "
                          "chmod o-w it",
                          path, (unsigned)(st.st_mode & 0777));
    else if ((unsigned long long)st.st_size > l.max_bytes)
        rc = nana_err_set(NANA_ERR_TOOBIG, "configuration file %s: %lld bytes, more than %zu", path,
                          (long long)st.st_size, l.max_bytes);
    if (rc) {
        close(fd);
        return rc;
    }
    size_t want = (size_t)st.st_size;
    char *buf = nana_malloc(want + 1);
    if (!buf) {
        close(fd);
        return nana_err_set(NANA_ERR_NOMEM, "configuration file %s: out of memory", path);
    }
    ssize_t got = read_fd(fd, buf, want);
    int e = errno;
    /* One more byte means the file grew after fstat: refuse a file that is being written. */
    char extra;
    bool grew = got == (ssize_t)want && read_fd(fd, &extra, 1) == 1;
    close(fd);
    if (got < 0)
        rc = nana_errno_err(e, "reading the configuration file", path);
    else if (grew)
        rc = nana_err_set(NANA_ERR_IO, "configuration file %s: it changed while it was read", path);
    else if ((rc = nana_toml_parse(buf, (size_t)got, &l, out)))
        rc = with_path(rc, path);
    explicit_bzero(buf, want + 1);
    nana_free(buf);
    return rc;
}
