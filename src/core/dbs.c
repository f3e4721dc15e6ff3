/*
 * dbs.c - the databases a server serves: the default one, and files named
 * by requests under the database directory.
 *
 * A request's "db" is a client-chosen name, so it must never reach a file
 * that SQLite or the server uses for anything else. Writing through such a
 * name corrupts a live database: "server_db.sqlite-wal" opened as a store
 * of its own overwrites the default database's write-ahead log. The rules,
 * each a PermissionError with the reason:
 *
 *   - the form: a plain file name ([A-Za-z0-9._-], 1 to 128 bytes, not
 *     starting with a dot), so no directories, no absolute paths, no "..";
 *   - not a name SQLite or the server gives to a companion file: ends in
 *     -wal, -shm, -journal or the lock suffix (-lock), contains -mj (a
 *     super-journal), in any case; not "backups";
 *   - resolved with realpath(): a symbolic link is followed only if it ends
 *     inside the directory (a directory-boundary check), not inside the
 *     backups folder, at a regular file whose own name passes the rules
 *     above;
 *   - not another name (link, hard link) of the default database, which
 *     would be served without the default's allowed_dbs policy, and not a
 *     companion of any open database, compared by device and inode;
 *   - an existing file must begin with SQLite's header: any other file is
 *     refused untouched, and so is an existing empty file, since SQLite
 *     would silently make a new database of it. A name that does not exist
 *     yet becomes a new database the server creates itself.
 *
 * Stores are keyed by the file's device and inode, so two names of one file
 * (a link inside the directory, or the default's own name) share one store:
 * one writer per file. Opening is serialized (open_mu): a first open may
 * run the check at open for seconds, and two requests creating one new
 * name must not race. A database found damaged stays refused until the
 * server restarts (with allow_corrupt it is served).
 */
#include "core/core_int.h"

#include "util/nana_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DB_NAME 128

typedef struct db_entry {
    char *name; /* as requested; NULL for the default */
    char *real; /* resolved path */
    dev_t dev;  /* the file's identity */
    ino_t ino;
    nana_store *store; /* NULL: the file was found damaged and is refused */
    bool owner;        /* this entry closes the store */
} db_entry;

struct nana_dbs {
    pthread_mutex_t mu;      /* the entries */
    pthread_mutex_t open_mu; /* one first open at a time */
    char dir[PATH_MAX];
    char backup_dir[PATH_MAX];
    char default_name[256];
    nana_store_opts so;
    unsigned max_open, nopen;
    db_entry *e;
    size_t n, cap;
};

/* Appends an entry; the caller holds the lock. */
static int add_entry(nana_dbs *d, const char *name, size_t len, const char *real,
                     const struct stat *id, nana_store *st, bool owner)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        db_entry *e = realloc(d->e, cap * sizeof(*e));
        if (!e) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        d->e = e;
        d->cap = cap;
    }
    db_entry *x = &d->e[d->n];
    x->name = NULL;
    if (name && (x->name = malloc(len + 1))) { /* |name| is not NUL-terminated */
        memcpy(x->name, name, len);
        x->name[len] = 0;
    }
    x->real = strdup(real);
    if ((name && !x->name) || !x->real) {
        free(x->name);
        free(x->real);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    x->dev = id->st_dev;
    x->ino = id->st_ino;
    x->store = st;
    x->owner = owner;
    d->n++;
    return NANA_OK;
}

int nana_dbs_open(const char *dir, const char *default_path, const nana_store_opts *so,
                  unsigned max_open, nana_dbs **out)
{
    *out = NULL;
    nana_dbs *d = calloc(1, sizeof(*d));
    if (!d) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->open_mu, NULL);
    d->so = *so;
    d->max_open = max_open ? max_open : 64;
    int rc = NANA_OK;
    bool made_backups = false;
    nana_store *st = NULL;
    char msg[NANA_ERRMSG_MAX];
    if (!realpath(dir, d->dir)) {
        int e = errno;
        rc = nana_err_set(e == ENOENT ? NANA_ERR_NOTFOUND : NANA_ERR_IO,
                          "database directory %s: %s", dir, strerror(e));
        goto fail;
    }
    /* backup()/restore() reach only <dir>/backups: never keys, certificates or databases. */
    snprintf(d->backup_dir, sizeof(d->backup_dir), "%.*s/backups", PATH_MAX - 9, d->dir);
    if (mkdir(d->backup_dir, 0700) == 0) {
        made_backups = true;
    } else if (errno != EEXIST) {
        int e = errno;
        snprintf(msg, sizeof(msg), "backup directory %.160s: %s", d->backup_dir, strerror(e));
        rc = nana_err_set_str(NANA_ERR_IO, msg);
        goto fail;
    }
    d->so.backup_dir = d->backup_dir;
    const char *base = strrchr(default_path, '/');
    snprintf(d->default_name, sizeof(d->default_name), "%s", base ? base + 1 : default_path);
    if (so->cluster_nodes) {
        /* Clustered: the databases live in the cluster, by name. */
        struct stat none = {0};
        if ((rc = nana_store_open(d->default_name, &d->so, &st))) {
            snprintf(msg, sizeof(msg), "%s", nana_errmsg());
            rc = nana_err_set(rc, "clustered database %s: %s", d->default_name, msg);
            goto fail;
        }
        if ((rc = add_entry(d, NULL, 0, d->default_name, &none, st, true))) goto fail;
        d->nopen = 1;
        *out = d;
        return NANA_OK;
    }
    if ((rc = nana_store_open(default_path, &d->so, &st))) {
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        rc = nana_err_set(rc, "database %s: %s", default_path, msg);
        goto fail;
    }
    char real[PATH_MAX];
    struct stat id;
    if (!realpath(default_path, real) || stat(real, &id) != 0) {
        rc = nana_err_set(NANA_ERR_IO, "database %s: cannot resolve its path", default_path);
        goto fail;
    }
    if ((rc = add_entry(d, NULL, 0, real, &id, st, true))) goto fail;
    d->nopen = 1;
    *out = d;
    return NANA_OK;

fail:
    /* A failed start leaves nothing behind: the store removed what it made. */
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    nana_store_close(st);
    if (made_backups) rmdir(d->backup_dir);
    pthread_mutex_destroy(&d->open_mu);
    pthread_mutex_destroy(&d->mu);
    free(d);
    return nana_err_set_str(rc, msg);
}

const char *nana_dbs_default_name(const nana_dbs *d)
{
    return d->default_name;
}

const char *nana_dbs_dir(const nana_dbs *d)
{
    return d->dir;
}

const char *nana_dbs_backup_dir(const nana_dbs *d)
{
    return d->backup_dir;
}

/* The entry for |name| (NULL: the default); the caller holds the lock. */
static db_entry *find_name(nana_dbs *d, const char *name, size_t len)
{
    for (size_t i = 0; i < d->n; i++) {
        db_entry *x = &d->e[i];
        if (!name ? !x->name : (x->name && strlen(x->name) == len && !memcmp(x->name, name, len)))
            return x;
    }
    return NULL;
}

/* The entry of the file |id| (an owner, or a refused damaged file); the caller holds the lock. */
static db_entry *find_file(nana_dbs *d, const struct stat *id)
{
    for (size_t i = 0; i < d->n; i++) {
        db_entry *x = &d->e[i];
        if ((x->owner || !x->store) && x->dev == id->st_dev && x->ino == id->st_ino) return x;
    }
    return NULL;
}

/* True if |st| may not be served: damaged, and damaged files are refused. */
static bool refused_store(const nana_dbs *d, nana_store *st)
{
    return !st || (nana_store_damaged(st) && !d->so.allow_corrupt);
}

nana_store *nana_dbs_peek(nana_dbs *d, const char *name, size_t len)
{
    pthread_mutex_lock(&d->mu);
    db_entry *x = find_name(d, name, len);
    nana_store *st = x ? x->store : NULL;
    pthread_mutex_unlock(&d->mu);
    return refused_store(d, st) ? NULL : st;
}

/* The refusal of a damaged database, as the client reads it. */
static int refuse_damaged(const char *name, size_t len, const char *default_name)
{
    int shown = !name ? (int)strlen(default_name) : len > 64 ? 64 : (int)len;
    return nana_err_set(NANA_ERR_CORRUPT,
                        "Database '%.*s' is damaged and is not served (the server log names the "
                        "problem)",
                        shown, name ? name : default_name);
}

/* Refusal of a database name, as the client reads it. */
static int refuse(const char *name, size_t len, const char *why)
{
    int shown = len > 64 ? 64 : (int)len;
    return nana_err_set(NANA_ERR_PERM, "Invalid database name '%.*s': %s", shown, name, why);
}

/* True if |s| (|n| bytes) ends with |suffix|, in any case. */
static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

/*
 * Why |base| (|n| bytes) may not name a database, or NULL: the names SQLite
 * and the server give to the files beside a database, and the backups folder.
 */
static const char *reserved_why(const char *base, size_t n)
{
    if (ends_with(base, n, "-wal") || ends_with(base, n, "-shm") || ends_with(base, n, "-journal"))
        return "names ending in -wal, -shm or -journal are SQLite's files beside a database";
    for (size_t i = 0; i + 3 <= n; i++)
        if (strncasecmp(base + i, "-mj", 3) == 0)
            return "names containing -mj are SQLite's super-journal files";
    if (ends_with(base, n, NANA_STORE_LOCK_SUFFIX))
        return "names ending in " NANA_STORE_LOCK_SUFFIX " are the server's lock files";
    if (n == 7 && strncmp(base, "backups", 7) == 0) return "'backups' is the backups folder";
    return NULL;
}

/* Checks the name's form: a plain file name that no companion file uses. */
int nana_dbs_check_name(const char *name, size_t len)
{
    if (len == 0 || len > MAX_DB_NAME) return refuse(name, len, "must be 1 to 128 bytes");
    if (name[0] == '/') return refuse(name, len, "absolute paths are not allowed");
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (ch == '/') return refuse(name, len, "must be a file name without directories");
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok) return refuse(name, len, "only letters, digits, '.', '_' and '-' are allowed");
    }
    if (name[0] == '.') return refuse(name, len, "must not start with '.'");
    const char *why = reserved_why(name, len);
    return why ? refuse(name, len, why) : NANA_OK;
}

/*
 * Resolves |name| inside the directory into |real|, refusing escapes and
 * reserved targets. *exists tells whether a file is there (then *id is its
 * identity); if not, |real| is where the new database goes.
 */
static int resolve(nana_dbs *d, const char *name, size_t len, char real[PATH_MAX], bool *exists,
                   struct stat *id)
{
    *exists = false;
    char path[PATH_MAX + MAX_DB_NAME + 2];
    snprintf(path, sizeof(path), "%s/%.*s", d->dir, (int)len, name);
    if (strlen(path) >= PATH_MAX) return refuse(name, len, "path too long");
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT) return refuse(name, len, "cannot be examined");
        memcpy(real, path, strlen(path) + 1); /* a new file, created in the directory */
        return NANA_OK;
    }
    if (!realpath(path, real)) return refuse(name, len, "cannot be resolved");
    size_t dl = strlen(d->dir);
    bool inside = strncmp(real, d->dir, dl) == 0 && (real[dl] == '/' || d->dir[dl - 1] == '/');
    if (!inside) return refuse(name, len, "resolves outside the database directory");
    size_t bl = strlen(d->backup_dir);
    if (strncmp(real, d->backup_dir, bl) == 0 && (real[bl] == '/' || real[bl] == '\0'))
        return refuse(name, len, "resolves into the backups folder");
    const char *base = strrchr(real, '/') + 1;
    const char *why = reserved_why(base, strlen(base));
    if (why || base[0] == '.')
        return refuse(name, len, "resolves to a file that is not a database of its own");
    if (stat(real, id) != 0 || !S_ISREG(id->st_mode))
        return refuse(name, len, "is not a regular file");
    *exists = true;
    return NANA_OK;
}

/*
 * Refuses |id| if it is a companion file (-wal, -shm, -journal, lock) of an
 * open database, under any name (a hard link, say). The caller holds the lock.
 */
static int check_not_companion(nana_dbs *d, const char *name, size_t len, const struct stat *id)
{
    static const char *const suffixes[] = {"-wal", "-shm", "-journal", NANA_STORE_LOCK_SUFFIX};
    for (size_t i = 0; i < d->n; i++) {
        if (!d->e[i].owner) continue;
        for (size_t k = 0; k < sizeof(suffixes) / sizeof(suffixes[0]); k++) {
            char p[PATH_MAX + 16];
            struct stat st;
            snprintf(p, sizeof(p), "%s%s", d->e[i].real, suffixes[k]);
            if (stat(p, &st) == 0 && st.st_dev == id->st_dev && st.st_ino == id->st_ino)
                return refuse(name, len, "is a file the server uses beside another database");
        }
    }
    return NANA_OK;
}

/* Records the store |st| just opened for |name| (closing it if that fails);
 * on success *out is |st|, owned by the entry. */
static int keep_opened(nana_dbs *d, const char *name, size_t len, const char *real,
                       const struct stat *id, nana_store *st, nana_store **out)
{
    pthread_mutex_lock(&d->mu);
    int rc = add_entry(d, name, len, real, id, st, true);
    if (!rc) d->nopen++;
    pthread_mutex_unlock(&d->mu);
    if (rc) {
        nana_store_close(st);
        return rc;
    }
    *out = st;
    return NANA_OK;
}

/* Opens the new store for |name| at |real|; the caller holds open_mu. */
static int open_named(nana_dbs *d, const char *name, size_t len, const char *real, bool exists,
                      nana_store **out)
{
    if (exists) {
        nana_file_kind kind = nana_store_file_kind(real);
        if (kind == NANA_FILE_EMPTY)
            return refuse(name, len,
                          "is an empty file; the server only serves SQLite databases and creates "
                          "new ones itself (remove the file to have it made)");
        if (kind != NANA_FILE_SQLITE)
            return refuse(name, len, "the file is not an SQLite database; it was left untouched");
    }
    pthread_mutex_lock(&d->mu);
    bool full = d->nopen >= d->max_open;
    pthread_mutex_unlock(&d->mu);
    if (full) return nana_err_set(NANA_ERR_BUSY, "too many databases open (limit %u)", d->max_open);
    nana_store *st = NULL;
    int rc = nana_store_open(real, &d->so, &st);
    struct stat id;
    if (!rc && stat(real, &id) != 0) rc = nana_err_set(NANA_ERR_IO, "cannot examine %s", real);
    if (rc == NANA_ERR_CORRUPT && exists && stat(real, &id) == 0) {
        /* Damaged: remembered, so the next request is refused without a new check. */
        nana_log(NANA_LOG_ERROR, "database '%.*s' (%s) is refused: %s", (int)len, name, real,
                 nana_errmsg());
        pthread_mutex_lock(&d->mu);
        rc = add_entry(d, name, len, real, &id, NULL, false);
        pthread_mutex_unlock(&d->mu);
        return rc ? rc : refuse_damaged(name, len, d->default_name);
    }
    if (rc) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        nana_store_close(st);
        return nana_err_set(rc, "Database '%.*s': %s", len > 64 ? 64 : (int)len, name, msg);
    }
    return keep_opened(d, name, len, real, &id, st, out);
}

/*
 * nana_dbs_get's first open of |name| on a clustered server: no files to
 * check, the store is the cluster's database of that name. The caller
 * holds open_mu and checked the name's form.
 */
static int open_clustered(nana_dbs *d, const char *name, size_t len, nana_store **out)
{
    pthread_mutex_lock(&d->mu);
    db_entry *x = find_name(d, name, len);
    nana_store *st = x ? x->store : NULL;
    bool full = d->nopen >= d->max_open;
    pthread_mutex_unlock(&d->mu);
    if (x) {
        *out = st;
        return NANA_OK;
    }
    if (full) return nana_err_set(NANA_ERR_BUSY, "too many databases open (limit %u)", d->max_open);
    char real[MAX_DB_NAME + 1];
    snprintf(real, sizeof(real), "%.*s", (int)len, name);
    int rc = nana_store_open(real, &d->so, &st);
    if (rc) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        return nana_err_set(rc, "Database '%s': %s", real, msg);
    }
    struct stat none = {0};
    return keep_opened(d, name, len, real, &none, st, out);
}

int nana_dbs_get(nana_dbs *d, const char *name, size_t len, nana_store **out)
{
    *out = NULL;
    pthread_mutex_lock(&d->mu);
    db_entry *x = find_name(d, name, len);
    nana_store *st = x ? x->store : NULL;
    pthread_mutex_unlock(&d->mu);
    if (x) {
        if (refused_store(d, st)) return refuse_damaged(name, len, d->default_name);
        *out = st;
        return NANA_OK;
    }
    int rc = nana_dbs_check_name(name, len);
    if (rc) return rc;
    pthread_mutex_lock(&d->open_mu);
    if (d->so.cluster_nodes) {
        rc = open_clustered(d, name, len, out);
        pthread_mutex_unlock(&d->open_mu);
        return rc;
    }
    char real[PATH_MAX];
    bool exists;
    struct stat id;
    if ((rc = resolve(d, name, len, real, &exists, &id))) goto out;
    bool found = false; /* the file is open (or refused) already: |st| is its store */
    pthread_mutex_lock(&d->mu);
    if ((x = find_name(d, name, len))) { /* opened meanwhile under this name */
        found = true;
        st = x->store;
    } else if (exists && (x = find_file(d, &id))) {
        /* Another name of a file already open (or refused). */
        found = true;
        st = x->store;
        if (!x->name && !(len == strlen(d->default_name) && !memcmp(name, d->default_name, len)))
            rc = refuse(name, len, "is another name of the default database");
        else
            rc = add_entry(d, name, len, real, &id, st, false); /* may move the entries */
    } else if (exists) {
        rc = check_not_companion(d, name, len, &id);
    }
    pthread_mutex_unlock(&d->mu);
    if (rc) goto out;
    if (found) {
        if (refused_store(d, st))
            rc = refuse_damaged(name, len, d->default_name);
        else
            *out = st;
        goto out;
    }
    rc = open_named(d, name, len, real, exists, out);
out:
    pthread_mutex_unlock(&d->open_mu);
    return rc;
}

int nana_dbs_close(nana_dbs *d)
{
    if (!d) return NANA_OK;
    int first = NANA_OK;
    for (size_t i = 0; i < d->n; i++) {
        if (d->e[i].owner) {
            int rc = nana_store_close(d->e[i].store);
            if (rc && !first) first = rc;
        }
        free(d->e[i].name);
        free(d->e[i].real);
    }
    free(d->e);
    pthread_mutex_destroy(&d->open_mu);
    pthread_mutex_destroy(&d->mu);
    free(d);
    return first;
}
