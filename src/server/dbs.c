/*
 * dbs.c - the databases a server serves: the default one, and files named
 * by requests under the database directory.
 *
 * A request's "db" must be a plain file name ([A-Za-z0-9._-], not starting
 * with a dot): no slashes, so no absolute paths and no "..". The name is
 * then resolved with realpath(); a symbolic link is followed only if it
 * ends inside the directory (a directory-boundary check, not a string
 * prefix), and the result must be a regular file or not exist yet. Stores
 * are keyed by their resolved path, so two names of one file (a link, or
 * the default database's own name) share one store: one writer per file.
 */
#include "server/server_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DB_NAME 128

typedef struct db_entry {
    char *name; /* as requested; NULL for the default */
    char *real; /* resolved path */
    nana_store *store;
    bool owner; /* this entry closes the store */
} db_entry;

struct nana_dbs {
    pthread_mutex_t mu;
    char dir[PATH_MAX];
    char backup_dir[PATH_MAX];
    char default_name[256];
    nana_store_opts so;
    unsigned max_open, nopen;
    db_entry *e;
    size_t n, cap;
};

/* Appends an entry; the caller holds the lock. */
static int add_entry(nana_dbs *d, const char *name, size_t len, const char *real, nana_store *st,
                     bool owner)
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
    d->so = *so;
    d->max_open = max_open ? max_open : 64;
    if (!realpath(dir, d->dir)) {
        int e = errno;
        free(d);
        return nana_err_set(e == ENOENT ? NANA_ERR_NOTFOUND : NANA_ERR_IO,
                            "database directory %s: %s", dir, strerror(e));
    }
    /* backup()/restore() reach only <dir>/backups: never keys, certificates or databases. */
    snprintf(d->backup_dir, sizeof(d->backup_dir), "%.*s/backups", PATH_MAX - 9, d->dir);
    if (mkdir(d->backup_dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "backup directory %.160s: %s", d->backup_dir, strerror(e));
        free(d);
        return nana_err_set_str(NANA_ERR_IO, msg);
    }
    d->so.backup_dir = d->backup_dir;
    const char *base = strrchr(default_path, '/');
    snprintf(d->default_name, sizeof(d->default_name), "%s", base ? base + 1 : default_path);
    nana_store *st;
    int rc = nana_store_open(default_path, &d->so, &st);
    if (rc) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        free(d);
        return nana_err_set(rc, "database %s: %s", default_path, msg);
    }
    char real[PATH_MAX];
    if (!realpath(default_path, real)) snprintf(real, sizeof(real), "%s", default_path);
    if ((rc = add_entry(d, NULL, 0, real, st, true))) {
        nana_store_close(st);
        free(d);
        return rc;
    }
    d->nopen = 1;
    *out = d;
    return NANA_OK;
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

nana_store *nana_dbs_peek(nana_dbs *d, const char *name, size_t len)
{
    pthread_mutex_lock(&d->mu);
    db_entry *x = find_name(d, name, len);
    nana_store *st = x ? x->store : NULL;
    pthread_mutex_unlock(&d->mu);
    return st;
}

/* Refusal of a database name, as the client reads it. */
static int refuse(const char *name, size_t len, const char *why)
{
    int shown = len > 64 ? 64 : (int)len;
    return nana_err_set(NANA_ERR_PERM, "Invalid database name '%.*s': %s", shown, name, why);
}

/* Checks the name's form: a plain file name. */
static int check_name(const char *name, size_t len)
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
    return NANA_OK;
}

/* Resolves |name| inside the directory into |real|, refusing escapes. */
static int resolve(nana_dbs *d, const char *name, size_t len, char real[PATH_MAX])
{
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
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        return refuse(name, len, "is not a regular file");
    return NANA_OK;
}

int nana_dbs_get(nana_dbs *d, const char *name, size_t len, nana_store **out)
{
    *out = NULL;
    nana_store *st = nana_dbs_peek(d, name, len);
    if (st) {
        *out = st;
        return NANA_OK;
    }
    int rc = check_name(name, len);
    if (rc) return rc;
    char real[PATH_MAX];
    if ((rc = resolve(d, name, len, real))) return rc;
    /* Another name of an open file shares its store. */
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->e[i].real, real) == 0) {
            st = d->e[i].store;
            rc = add_entry(d, name, len, real, st, false);
            pthread_mutex_unlock(&d->mu);
            if (!rc) *out = st;
            return rc;
        }
    }
    bool full = d->nopen >= d->max_open;
    if (!full) d->nopen++; /* reserve a slot while opening outside the lock */
    pthread_mutex_unlock(&d->mu);
    if (full) return nana_err_set(NANA_ERR_BUSY, "too many databases open (limit %u)", d->max_open);
    rc = nana_store_open(real, &d->so, &st);
    pthread_mutex_lock(&d->mu);
    if (rc) {
        d->nopen--;
        pthread_mutex_unlock(&d->mu);
        return rc;
    }
    /* Someone may have opened the same file meanwhile (by any name): keep theirs. */
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->e[i].real, real) != 0) continue;
        d->nopen--;
        nana_store *theirs = d->e[i].store;
        rc = find_name(d, name, len) ? NANA_OK : add_entry(d, name, len, real, theirs, false);
        pthread_mutex_unlock(&d->mu);
        nana_store_close(st);
        if (!rc) *out = theirs;
        return rc;
    }
    rc = add_entry(d, name, len, real, st, true);
    if (rc) d->nopen--;
    pthread_mutex_unlock(&d->mu);
    if (rc) {
        nana_store_close(st);
        return rc;
    }
    *out = st;
    return NANA_OK;
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
    pthread_mutex_destroy(&d->mu);
    free(d);
    return first;
}
