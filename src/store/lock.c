/*
 * lock.c - one server per database file: an exclusive flock(2) on a lock
 * file beside the database ("<database>-lock"), held for the store's life.
 *
 * SQLite's own locks serialize transactions, not owners: two servers on
 * one file would both run, each answering from its own cache, so the
 * second would serve stale data. The lock file also records its holder
 * (pid, host, start time) so a refusal can name it.
 *
 * The lock file is removed when the store closes. Removing a lock file is
 * safe only because taking the lock checks, after flock succeeds, that the
 * locked file is still the one at the path (same device and inode); if
 * the holder removed it meanwhile, the taker starts over. A process that
 * dies leaves the file behind, unlocked: the next taker simply locks it.
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_TRIES 16

/*
 * The lock file's path for the database at |path|: beside the file the
 * path resolves to (links followed), so every name of one file shares one
 * lock. Returns a malloc'd string, or NULL with the error set.
 */
static char *lock_path_for(const char *path)
{
    char real[PATH_MAX];
    const char *use = path;
    if (realpath(path, real)) {
        use = real;
    } else if (errno == ENOENT) {
        /* A new file: resolve its directory. */
        char *copy = strdup(path), *copy2 = strdup(path);
        char dir[PATH_MAX];
        if (copy && copy2 && realpath(dirname(copy), dir)) {
            snprintf(real, sizeof(real), "%.*s/%.*s", PATH_MAX / 2, dir, PATH_MAX / 2 - 8,
                     basename(copy2));
            use = real;
        }
        free(copy);
        free(copy2);
    }
    size_t n = strlen(use) + sizeof(NANA_STORE_LOCK_SUFFIX);
    char *lp = malloc(n);
    if (!lp) {
        (void)nana_err_set(NANA_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(lp, n, "%s%s", use, NANA_STORE_LOCK_SUFFIX);
    return lp;
}

/* Reads the holder record of a lock file into |out| (printable characters only). */
static void read_holder(int fd, char *out, size_t outlen)
{
    char buf[160];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    size_t k = 0;
    for (ssize_t i = 0; n > 0 && i < n && k + 1 < outlen; i++)
        if (buf[i] >= 0x20 && buf[i] < 0x7f) out[k++] = buf[i];
    out[k] = '\0';
    if (!k) snprintf(out, outlen, "a process that has not written its name yet");
}

/* Writes this process's holder record into the locked file. */
static void write_holder(int fd)
{
    char host[64] = "?", when[32] = "?", rec[160];
    if (gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "?");
    host[sizeof(host) - 1] = '\0';
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n = snprintf(rec, sizeof(rec), "pid %ld on host %s since %s\n", (long)getpid(), host, when);
    if (ftruncate(fd, 0) == 0 && n > 0) {
        ssize_t w = pwrite(fd, rec, (size_t)n, 0);
        (void)w;
    }
}

int nana_dblock_take(const char *path, bool read_only, nana_dblock *out)
{
    out->fd = -1;
    out->path = lock_path_for(path);
    if (!out->path) return NANA_ERR_NOMEM;
    for (int attempt = 0; attempt < LOCK_TRIES; attempt++) {
        int fd = open(out->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
            int e = errno;
            if (read_only && (e == EACCES || e == EROFS)) {
                /* Nothing can write here: a read-only store goes on unlocked. */
                free(out->path);
                out->path = NULL;
                return NANA_OK;
            }
            int rc = nana_err_set(NANA_ERR_IO, "cannot open the lock file %.160s: %s", out->path,
                                  strerror(e));
            free(out->path);
            out->path = NULL;
            return rc;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            char who[128];
            if (e == EWOULDBLOCK) read_holder(fd, who, sizeof(who));
            close(fd);
            int rc =
                e == EWOULDBLOCK
                    ? nana_err_set(NANA_ERR_BUSY,
                                   "the database is in use by another server (%s; lock file "
                                   "%.100s)",
                                   who, out->path)
                    : nana_err_set(NANA_ERR_IO, "cannot lock %.160s: %s", out->path, strerror(e));
            free(out->path);
            out->path = NULL;
            return rc;
        }
        struct stat held, now;
        if (fstat(fd, &held) == 0 && stat(out->path, &now) == 0 && held.st_dev == now.st_dev &&
            held.st_ino == now.st_ino) {
            write_holder(fd);
            out->fd = fd;
            return NANA_OK;
        }
        close(fd); /* the holder removed it as we locked it: start over */
    }
    int rc = nana_err_set(NANA_ERR_BUSY, "the lock file %.160s keeps changing", out->path);
    free(out->path);
    out->path = NULL;
    return rc;
}

void nana_dblock_drop(nana_dblock *l)
{
    if (l->fd >= 0) {
        /* Removed while still locked, so no one can lock this inode and
         * believe it current (see the file comment). */
        unlink(l->path);
        close(l->fd);
    }
    free(l->path);
    l->fd = -1;
    l->path = NULL;
}
