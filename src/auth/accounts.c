/*
 * accounts.c - the accounts file and its live reload (see nana_accounts.h).
 *
 * A snapshot is built in one pass over the parsed JSON tree: every string
 * and array of it lives in one arena (a list of chunks) freed in one go
 * when the last reference is dropped, so an immutable snapshot needs no
 * per-field ownership. Lists that are searched on the request path
 * (methods, databases, tables) are sorted and deduplicated at load and
 * searched by bisection; names are found through a sorted index.
 *
 * The watcher thread polls an inotify descriptor on the file's directory
 * and an eventfd that asks it to stop. Reloads (from the thread or from
 * nana_accounts_watch_reload) run one at a time under reload_mu; only the
 * pointer swap takes mu, which readers take to get a reference.
 */
#include "auth/nana_accounts.h"

#include "auth/nana_keys.h"
#include "util/nana_err.h"
#include "util/nana_file.h"
#include "util/nana_json.h"
#include "util/nana_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_SIZE   ((size_t)16 * 1024) /* arena chunk; larger requests get a chunk of their own */
#define MAX_DEPTH    8                   /* the format nests 5 deep; deeper text is refused early */
#define DB_DIR_MAX   4096                /* bytes in "db_dir" */
#define QUOTE_MAX    40                  /* bytes of a user's string repeated in a message */
#define DEBOUNCE_MS  50                  /* quiet time after the last event before reloading */
#define DELAY_MAX_MS 500                 /* longest wait after the first event of a burst */

/* ---- the snapshot and its arena ---- */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t mem[];
} chunk;

/* One entry of the name index: accounts sorted by name. */
typedef struct name_ix {
    const char *name;
    uint32_t len;
    uint32_t idx;
} name_ix;

/* Which list of an account a fingerprint comes from. */
enum { FP_CERT = 0, FP_SPKI = 1 };

/* One entry of the fingerprint index: every fingerprint of every account. */
typedef struct fp_ix {
    uint8_t fp[NANA_FINGERPRINT_BYTES];
    uint32_t kind; /* FP_CERT or FP_SPKI */
    uint32_t idx;  /* the account */
    uint32_t pos;  /* the place in its list, for messages */
} fp_ix;

struct nana_accounts {
    atomic_size_t refs;
    size_t count;
    nana_account *accounts; /* count, file order */
    uint8_t *keys;          /* count * 32 */
    name_ix *by_name;       /* count, sorted by name */
    fp_ix *by_fp;           /* nfp, sorted by kind then fingerprint */
    size_t nfp;
    char *db_dir;  /* NULL if absent */
    chunk *chunks; /* the arena: every allocation above */
};

/* Zeroed memory for |n| bytes, owned by the snapshot's arena; NULL on OOM. */
static void *arena_alloc(nana_accounts *a, size_t n)
{
    const size_t al = _Alignof(max_align_t);
    if (n > SIZE_MAX / 2) return NULL;
    n = n ? (n + al - 1) / al * al : al;
    chunk *c = a->chunks;
    if (!c || c->cap - c->used < n) {
        bool big = n > CHUNK_SIZE / 4;
        size_t cap = big ? n : CHUNK_SIZE;
        chunk *fresh = malloc(sizeof(chunk) + cap);
        if (!fresh) return NULL;
        fresh->used = 0;
        fresh->cap = cap;
        if (c && big) {
            /* A big block: slot it behind the current chunk, which stays in use. */
            fresh->next = c->next;
            c->next = fresh;
        } else {
            fresh->next = c;
            a->chunks = fresh;
        }
        c = fresh;
    }
    void *p = (char *)c->mem + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

/* A NUL-terminated copy of s[0..n) in the arena; NULL on OOM. */
static char *arena_strndup(nana_accounts *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p) memcpy(p, s, n);
    return p;
}

/* A new empty snapshot with one reference, owned by the caller; NULL on OOM. */
static nana_accounts *accounts_new(void)
{
    nana_accounts *a = calloc(1, sizeof(*a));
    if (a) atomic_init(&a->refs, 1);
    return a;
}

/* Frees a snapshot and its arena. */
static void accounts_free(nana_accounts *a)
{
    if (!a) return;
    for (size_t i = 0; a->accounts && i < a->count; i++)
        if (a->accounts[i].jwt_secret)
            sodium_memzero(a->accounts[i].jwt_secret, a->accounts[i].jwt_secret_len);
    for (chunk *c = a->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

nana_accounts *nana_accounts_ref(nana_accounts *a)
{
    if (a) atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
    return a;
}

void nana_accounts_unref(nana_accounts *a)
{
    if (a && atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1) accounts_free(a);
}

size_t nana_accounts_count(const nana_accounts *a)
{
    return a->count;
}

const nana_account *nana_accounts_at(const nana_accounts *a, size_t i)
{
    return i < a->count ? &a->accounts[i] : NULL;
}

const uint8_t *nana_accounts_keys(const nana_accounts *a)
{
    return a->keys;
}

const char *nana_accounts_db_dir(const nana_accounts *a)
{
    return a->db_dir;
}

/* Orders (name, length) pairs bytewise, a shorter prefix first. */
static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

const nana_account *nana_accounts_find(const nana_accounts *a, const char *name, size_t len)
{
    size_t lo = 0, hi = a->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const name_ix *e = &a->by_name[mid];
        int c = name_cmp(name, len, e->name, e->len);
        if (c == 0) return &a->accounts[e->idx];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- messages ---- */

/* Room for a quoted string: quotes, QUOTE_MAX bytes, "..." and the NUL. */
typedef struct quoted {
    char s[QUOTE_MAX + 8];
} quoted;

/*
 * |s| (n bytes) in double quotes for a message, in |q|: cut after QUOTE_MAX
 * bytes at a UTF-8 boundary (with "..."), control characters, quotes and
 * backslashes shown as '?', so a message stays one short, clean line.
 */
static const char *quote(quoted *q, const char *s, size_t n)
{
    size_t cut = n > QUOTE_MAX ? QUOTE_MAX : n;
    while (cut > 0 && cut < n && ((unsigned char)s[cut] & 0xc0) == 0x80)
        cut--;
    char *o = q->s;
    *o++ = '"';
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        *o++ = (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    if (cut < n) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o++ = '"';
    *o = '\0';
    return q->s;
}

/* Records "<where>: <message>" and returns NANA_ERR_INVALID. */
static int bad(const char *where, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const char *where, const char *fmt, ...)
{
    char msg[NANA_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return nana_err_set(NANA_ERR_INVALID, "%s: %s", where, msg);
}

/* ---- names ---- */

bool nana_account_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > NANA_ACCOUNT_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '@' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/* The kinds of name a list can hold, with their rules. */
typedef enum { KIND_METHOD, KIND_DB, KIND_TABLE } name_kind;

/* True if s[0..n) is a valid name of |kind|. */
static bool name_ok(name_kind kind, const char *s, size_t n)
{
    if (n == 0 || memchr(s, '\0', n)) return false;
    if (kind == KIND_METHOD) return n <= NANA_METHOD_NAME_MAX;
    if (kind == KIND_DB) return n <= NANA_DB_NAME_MAX;
    if (n > NANA_TABLE_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

/* What a valid name of |kind| looks like, for messages. */
static const char *name_rule(name_kind kind)
{
    switch (kind) {
    case KIND_METHOD:
        return "a method name (a string of 1..64 bytes)";
    case KIND_DB:
        return "a database name (a string of 1..255 bytes)";
    default:
        return "a table name ([A-Za-z_][A-Za-z0-9_]*, at most 128 bytes)";
    }
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts v[0..*n) and drops repeats. */
static void sort_unique(char **v, size_t *n)
{
    if (*n < 2) return;
    qsort(v, *n, sizeof(*v), str_ptr_cmp);
    size_t k = 1;
    for (size_t i = 1; i < *n; i++)
        if (strcmp(v[i], v[k - 1]) != 0) v[k++] = v[i];
    *n = k;
}

/* True if the sorted list v[0..n) holds |s|. */
static bool sorted_has(char *const *v, size_t n, const char *s)
{
    if (!s || n == 0) return false;
    return bsearch(&s, v, n, sizeof(*v), str_ptr_cmp) != NULL;
}

/* ---- parsing ---- */

/* True if the member's key is |name|. */
static bool key_is(const nana_json_member *m, const char *name)
{
    size_t n = strlen(name);
    return m->keylen == n && memcmp(m->key, name, n) == 0;
}

/* Checks that |v| is a list of at most NANA_ACCOUNTS_LIST_MAX entries. */
static int want_list(const nana_json *v, const char *where, const char *of)
{
    if (v->type != NANA_JSON_ARRAY) return bad(where, "must be a list of %s", of);
    if (v->n > NANA_ACCOUNTS_LIST_MAX)
        return bad(where, "%u entries, the limit is %d", (unsigned)v->n, NANA_ACCOUNTS_LIST_MAX);
    return NANA_OK;
}

/*
 * Reads the list of names |v| at |where| into *out (arena memory, sorted,
 * without repeats) and *n. Errors name the entry.
 */
static int name_list(nana_accounts *a, const nana_json *v, name_kind kind, const char *where,
                     char ***out, size_t *n)
{
    static const char *const plural[] = {"method names", "database names", "table names"};
    int rc = want_list(v, where, plural[kind]);
    if (rc) return rc;
    char **items = arena_alloc(a, (v->n ? v->n : 1) * sizeof(*items));
    if (!items) return nana_err_set(NANA_ERR_NOMEM, "out of memory reading the accounts");
    for (uint32_t i = 0; i < v->n; i++) {
        const nana_json *e = v->u.items[i];
        if (e->type != NANA_JSON_STRING || !name_ok(kind, e->u.str, e->n)) {
            char at[192];
            snprintf(at, sizeof(at), "%s[%u]", where, (unsigned)i);
            quoted q = {{0}};
            if (e->type != NANA_JSON_STRING) return bad(at, "must be %s", name_rule(kind));
            return bad(at, "%s is not %s", quote(&q, e->u.str, e->n), name_rule(kind));
        }
        items[i] = arena_strndup(a, e->u.str, e->n);
        if (!items[i]) return nana_err_set(NANA_ERR_NOMEM, "out of memory reading the accounts");
    }
    *n = v->n;
    sort_unique(items, n);
    *out = items;
    return NANA_OK;
}

/* Reads the list of CIDR rules |v| at |where| into *out (arena memory) and *n. */
static int cidr_list(nana_accounts *a, const nana_json *v, const char *where, nana_cidr **out,
                     size_t *n)
{
    int rc = want_list(v, where, "addresses");
    if (rc) return rc;
    nana_cidr *rules = arena_alloc(a, (v->n ? v->n : 1) * sizeof(*rules));
    if (!rules) return nana_err_set(NANA_ERR_NOMEM, "out of memory reading the accounts");
    for (uint32_t i = 0; i < v->n; i++) {
        const nana_json *e = v->u.items[i];
        if (e->type == NANA_JSON_STRING && nana_cidr_parse(e->u.str, e->n, &rules[i]) == 0)
            continue;
        char at[192];
        snprintf(at, sizeof(at), "%s[%u]", where, (unsigned)i);
        quoted q = {{0}};
        if (e->type != NANA_JSON_STRING)
            return bad(at, "must be a string: an IPv4 or IPv6 address with an optional /prefix");
        return bad(at, "%s is not an IPv4 or IPv6 address with an optional /prefix",
                   quote(&q, e->u.str, e->n));
    }
    *out = rules;
    *n = v->n;
    return NANA_OK;
}

static int db_cmp(const void *a, const void *b)
{
    return strcmp(((const nana_account_db *)a)->name, ((const nana_account_db *)b)->name);
}

/*
 * Reads "allowed_dbs" when it is not null: a list of database names (every
 * table of each) or a map from database name to null (every table) or a
 * list of table names. Fills acc->dbs (arena memory, sorted by name).
 */
static int parse_dbs(nana_accounts *a, const nana_json *v, const char *where, nana_account *acc)
{
    if (v->type == NANA_JSON_ARRAY) {
        char **names = NULL;
        size_t n = 0;
        int rc = name_list(a, v, KIND_DB, where, &names, &n);
        if (rc) return rc;
        acc->dbs = arena_alloc(a, (n ? n : 1) * sizeof(*acc->dbs));
        if (!acc->dbs) return nana_err_set(NANA_ERR_NOMEM, "out of memory reading the accounts");
        for (size_t i = 0; i < n; i++) {
            acc->dbs[i].name = names[i];
            acc->dbs[i].all_tables = true;
        }
        acc->ndbs = n;
        return NANA_OK;
    }
    if (v->type != NANA_JSON_OBJECT)
        return bad(where, "must be null, a list of database names or a map from database name "
                          "to null or a list of table names");
    if (v->n > NANA_ACCOUNTS_LIST_MAX)
        return bad(where, "%u entries, the limit is %d", (unsigned)v->n, NANA_ACCOUNTS_LIST_MAX);
    acc->dbs = arena_alloc(a, (v->n ? v->n : 1) * sizeof(*acc->dbs));
    if (!acc->dbs) return nana_err_set(NANA_ERR_NOMEM, "out of memory reading the accounts");
    for (uint32_t i = 0; i < v->n; i++) {
        const nana_json_member *m = &v->u.members[i];
        nana_account_db *db = &acc->dbs[i];
        quoted q = {{0}};
        char at[192];
        snprintf(at, sizeof(at), "%s[%s]", where, quote(&q, m->key, m->keylen));
        if (!name_ok(KIND_DB, m->key, m->keylen)) return bad(at, "not %s", name_rule(KIND_DB));
        db->name = arena_strndup(a, m->key, m->keylen);
        if (!db->name) return nana_err_set(NANA_ERR_NOMEM, "out of memory reading the accounts");
        if (m->val->type == NANA_JSON_NULL) {
            db->all_tables = true;
            continue;
        }
        if (m->val->type != NANA_JSON_ARRAY)
            return bad(at, "must be null (every table) or a list of table names");
        int rc = name_list(a, m->val, KIND_TABLE, at, &db->tables, &db->ntables);
        if (rc) return rc;
    }
    acc->ndbs = v->n;
    qsort(acc->dbs, acc->ndbs, sizeof(*acc->dbs), db_cmp);
    return NANA_OK;
}

/*
 * Reads the list of fingerprints |v| at |where| into *out (arena memory)
 * and *n. Repeats are left for index_accounts to refuse, with both places.
 */
static int fingerprint_list(nana_accounts *a, const nana_json *v, const char *where,
                            uint8_t (**out)[NANA_FINGERPRINT_BYTES], size_t *n)
{
    int rc = want_list(v, where, "SHA-256 fingerprints");
    if (rc) return rc;
    uint8_t(*fps)[NANA_FINGERPRINT_BYTES] = arena_alloc(a, (v->n ? v->n : 1) * sizeof(*fps));
    if (!fps) return nana_err_set(NANA_ERR_NOMEM, "out of memory reading the accounts");
    for (uint32_t i = 0; i < v->n; i++) {
        const nana_json *e = v->u.items[i];
        char at[192];
        snprintf(at, sizeof(at), "%s[%u]", where, (unsigned)i);
        if (e->type != NANA_JSON_STRING)
            return bad(at, "must be a string: 64 hex digits (colons allowed between pairs) or "
                           "sha256/BASE64");
        if (nana_fingerprint_parse(e->u.str, e->n, fps[i]) != 0) {
            char why[NANA_ERRMSG_MAX];
            snprintf(why, sizeof(why), "%s", nana_errmsg());
            return bad(at, "%s", why);
        }
    }
    *out = fps;
    *n = v->n;
    return NANA_OK;
}

/* Reads "login": "key", "certificate" or "key+certificate". */
static int parse_login(const nana_json *v, const char *where, nana_login *out)
{
    static const nana_login all[] = {NANA_LOGIN_KEY, NANA_LOGIN_CERT, NANA_LOGIN_KEY_CERT};
    for (size_t i = 0; v->type == NANA_JSON_STRING && i < sizeof(all) / sizeof(all[0]); i++) {
        const char *w = nana_login_name(all[i]);
        if (v->n == strlen(w) && memcmp(v->u.str, w, v->n) == 0) {
            *out = all[i];
            return NANA_OK;
        }
    }
    return bad(where, "must be \"key\", \"certificate\" or \"key+certificate\"");
}

/* Checks that the account's login fits the credentials it names. */
static int check_login(const char *where, const nana_account *acc, bool have_key)
{
    bool certs = acc->n_cert_sha256 + acc->n_spki_sha256 > 0;
    if ((acc->login & NANA_LOGIN_KEY) && !have_key) return bad(where, "\"public_key\" is missing");
    if (!(acc->login & NANA_LOGIN_KEY) && have_key)
        return bad(where, "\"public_key\" is given but the account logs in by certificate alone; "
                          "remove the key or use \"login\": \"key+certificate\"");
    if ((acc->login & NANA_LOGIN_CERT) && !certs)
        return bad(where,
                   "\"login\": \"%s\" needs a certificate: \"client_cert_sha256\" or "
                   "\"client_spki_sha256\"",
                   nana_login_name(acc->login));
    return NANA_OK;
}

/*
 * Reads the bearer-token secret in file |path| (relative to |base| unless
 * absolute; base NULL: the working directory) into acc->jwt_secret
 * (arena memory): a regular file only its owner may read or write, of
 * NANA_JWT_SECRET_MIN..MAX bytes once one trailing newline ("\n" or
 * "\r\n") is dropped. Messages name the place and the path, never a
 * byte of the file.
 */
static int read_jwt_secret(nana_accounts *a, const char *at, const char *base, const char *path,
                           nana_account *acc)
{
    char full[PATH_MAX];
    if (path[0] != '/' && base && base[0])
        snprintf(full, sizeof(full), "%s/%s", base, path);
    else
        snprintf(full, sizeof(full), "%s", path);
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return bad(at, "cannot open %s: %s", full, strerror(errno));
    struct stat st;
    uint8_t buf[NANA_JWT_SECRET_MAX + 3];
    ssize_t n = -1;
    int rc = NANA_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = bad(at, "%s is not a regular file", full);
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        rc = bad(at, "%s may be read or written by group or others (mode %04o); chmod 600 it", full,
                 (unsigned)(st.st_mode & 07777));
    else if ((n = read(fd, buf, sizeof(buf))) < 0)
        rc = bad(at, "cannot read %s: %s", full, strerror(errno));
    close(fd);
    size_t len = n > 0 ? (size_t)n : 0;
    if (!rc && len > 0 && buf[len - 1] == '\n') len -= 1 + (len > 1 && buf[len - 2] == '\r');
    if (!rc && (len < NANA_JWT_SECRET_MIN || len > NANA_JWT_SECRET_MAX))
        rc = bad(at, "%s must hold %d..%d bytes (one trailing newline aside)", full,
                 NANA_JWT_SECRET_MIN, NANA_JWT_SECRET_MAX);
    uint8_t *secret = rc ? NULL : arena_alloc(a, len);
    if (!rc && !secret) rc = nana_err_set(NANA_ERR_NOMEM, "out of memory reading the accounts");
    if (secret) {
        memcpy(secret, buf, len);
        acc->jwt_secret = secret;
        acc->jwt_secret_len = len;
    }
    sodium_memzero(buf, sizeof(buf));
    return rc;
}

/* Reads account |ai| from |obj| into |acc| (strings and lists in the arena). */
static int parse_account(nana_accounts *a, size_t ai, const nana_json *obj, nana_account *acc,
                         const char *base)
{
    char where[96];
    snprintf(where, sizeof(where), "accounts[%zu]", ai);
    if (obj->type != NANA_JSON_OBJECT) return bad(where, "must be an object");
    acc->default_methods = true;
    acc->all_dbs = true;
    acc->login = NANA_LOGIN_KEY;
    bool have_name = false, have_key = false;
    for (uint32_t i = 0; i < obj->n; i++) {
        const nana_json_member *m = &obj->u.members[i];
        const nana_json *v = m->val;
        char at[128];
        quoted q = {{0}};
        snprintf(at, sizeof(at), "%s.%s", where, m->key);
        int rc = NANA_OK;
        if (key_is(m, "name")) {
            if (v->type != NANA_JSON_STRING)
                return bad(at, "must be a string of 1..%d bytes of A-Z a-z 0-9 _ . @ -",
                           NANA_ACCOUNT_NAME_MAX);
            if (!nana_account_name_valid(v->u.str, v->n))
                return bad(at, "%s is not 1..%d bytes of A-Z a-z 0-9 _ . @ -",
                           quote(&q, v->u.str, v->n), NANA_ACCOUNT_NAME_MAX);
            acc->name = arena_strndup(a, v->u.str, v->n);
            if (!acc->name) return nana_err_set(NANA_ERR_NOMEM, "out of memory reading accounts");
            have_name = true;
        } else if (key_is(m, "public_key")) {
            if (v->type != NANA_JSON_STRING)
                return bad(at, "must be a string: \"ssh-ed25519 AAAA... comment\"");
            if (nana_ed25519_parse_openssh(v->u.str, v->n, acc->public_key) != 0) {
                char why[NANA_ERRMSG_MAX];
                snprintf(why, sizeof(why), "%s", nana_errmsg());
                return bad(at, "%s", why);
            }
            have_key = true;
        } else if (key_is(m, "login")) {
            rc = parse_login(v, at, &acc->login);
        } else if (key_is(m, "client_cert_sha256")) {
            rc = fingerprint_list(a, v, at, &acc->cert_sha256, &acc->n_cert_sha256);
        } else if (key_is(m, "client_spki_sha256")) {
            rc = fingerprint_list(a, v, at, &acc->spki_sha256, &acc->n_spki_sha256);
        } else if (key_is(m, "allowed_methods")) {
            if (v->type != NANA_JSON_NULL) {
                acc->default_methods = false;
                rc = name_list(a, v, KIND_METHOD, at, &acc->allowed_methods, &acc->n_allowed);
            }
        } else if (key_is(m, "forbidden_methods")) {
            rc = name_list(a, v, KIND_METHOD, at, &acc->forbidden_methods, &acc->n_forbidden);
        } else if (key_is(m, "allowed_dbs")) {
            if (v->type != NANA_JSON_NULL) {
                acc->all_dbs = false;
                rc = parse_dbs(a, v, at, acc);
            }
        } else if (key_is(m, "read_only")) {
            if (v->type != NANA_JSON_TRUE && v->type != NANA_JSON_FALSE)
                return bad(at, "must be true or false");
            acc->read_only = v->type == NANA_JSON_TRUE;
        } else if (key_is(m, "allowed_ips")) {
            rc = cidr_list(a, v, at, &acc->allowed_ips, &acc->n_allowed_ips);
        } else if (key_is(m, "blocked_ips")) {
            rc = cidr_list(a, v, at, &acc->blocked_ips, &acc->n_blocked_ips);
        } else if (key_is(m, "max_calls_per_sec")) {
            double d = 0;
            if (v->type != NANA_JSON_NUMBER || nana_json_number_double(v, &d) != 0 ||
                !isfinite(d) || d < 0)
                return bad(at, "must be a number >= 0 (0: the server's default)");
            acc->max_calls_per_sec = d > 0 ? d : 0.0;
        } else if (key_is(m, "jwt_secret_file")) {
            if (v->type != NANA_JSON_STRING || v->n == 0 || v->n >= PATH_MAX ||
                memchr(v->u.str, '\0', v->n))
                return bad(at, "must be a file path (a string)");
            rc = read_jwt_secret(a, at, base, v->u.str, acc);
        } else {
            return bad(where, "unknown key %s", quote(&q, m->key, m->keylen));
        }
        if (rc) return rc;
    }
    if (!have_name) return bad(where, "\"name\" is missing");
    return check_login(where, acc, have_key);
}

static int name_ix_cmp(const void *pa, const void *pb)
{
    const name_ix *a = pa, *b = pb;
    int c = name_cmp(a->name, a->len, b->name, b->len);
    if (c) return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* An account's key with its index, to find repeated keys by sorting. */
typedef struct key_ix {
    uint8_t key[32];
    uint32_t idx;
} key_ix;

static int key_ix_cmp(const void *pa, const void *pb)
{
    const key_ix *a = pa, *b = pb;
    int c = memcmp(a->key, b->key, sizeof(a->key));
    if (c) return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int fp_ix_cmp(const void *pa, const void *pb)
{
    const fp_ix *a = pa, *b = pb;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    int c = memcmp(a->fp, b->fp, sizeof(a->fp));
    if (c) return c;
    if (a->idx != b->idx) return a->idx < b->idx ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* The JSON key of a fingerprint list. */
static const char *fp_list_name(uint32_t kind)
{
    return kind == FP_CERT ? "client_cert_sha256" : "client_spki_sha256";
}

/*
 * Builds the fingerprint index (arena memory), refusing a fingerprint
 * listed twice, in one account or in two: each names at most one account.
 */
static int index_fingerprints(nana_accounts *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->count; i++)
        n += a->accounts[i].n_cert_sha256 + a->accounts[i].n_spki_sha256;
    a->nfp = n;
    if (n == 0) return NANA_OK;
    a->by_fp = arena_alloc(a, n * sizeof(*a->by_fp));
    if (!a->by_fp) return nana_err_set(NANA_ERR_NOMEM, "out of memory indexing the accounts");
    size_t k = 0;
    for (size_t i = 0; i < a->count; i++) {
        const nana_account *acc = &a->accounts[i];
        for (size_t j = 0; j < acc->n_cert_sha256; j++, k++) {
            memcpy(a->by_fp[k].fp, acc->cert_sha256[j], NANA_FINGERPRINT_BYTES);
            a->by_fp[k].kind = FP_CERT;
            a->by_fp[k].idx = (uint32_t)i;
            a->by_fp[k].pos = (uint32_t)j;
        }
        for (size_t j = 0; j < acc->n_spki_sha256; j++, k++) {
            memcpy(a->by_fp[k].fp, acc->spki_sha256[j], NANA_FINGERPRINT_BYTES);
            a->by_fp[k].kind = FP_SPKI;
            a->by_fp[k].idx = (uint32_t)i;
            a->by_fp[k].pos = (uint32_t)j;
        }
    }
    qsort(a->by_fp, n, sizeof(*a->by_fp), fp_ix_cmp);
    for (size_t i = 1; i < n; i++) {
        const fp_ix *p = &a->by_fp[i - 1], *e = &a->by_fp[i];
        if (p->kind == e->kind && memcmp(p->fp, e->fp, NANA_FINGERPRINT_BYTES) == 0) {
            char where[128];
            const char *list = fp_list_name(e->kind);
            snprintf(where, sizeof(where), "accounts[%u].%s[%u]", (unsigned)e->idx, list,
                     (unsigned)e->pos);
            return bad(where,
                       "the same fingerprint as accounts[%u].%s[%u]; a certificate names "
                       "one account",
                       (unsigned)p->idx, list, (unsigned)p->pos);
        }
    }
    return NANA_OK;
}

/*
 * Builds the name index, the key array and the fingerprint index, refusing
 * a name, a key or a fingerprint that two accounts share (the message names
 * the later account and the earlier).
 */
static int index_accounts(nana_accounts *a)
{
    a->by_name = arena_alloc(a, a->count * sizeof(*a->by_name));
    a->keys = arena_alloc(a, a->count * 32);
    key_ix *keys = malloc(a->count * sizeof(*keys));
    if (!a->by_name || !a->keys || !keys) {
        free(keys);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory indexing the accounts");
    }
    for (size_t i = 0; i < a->count; i++) {
        const nana_account *acc = &a->accounts[i];
        a->by_name[i] = (name_ix){acc->name, (uint32_t)strlen(acc->name), (uint32_t)i};
        memcpy(a->keys + 32 * i, acc->public_key, 32);
        memcpy(keys[i].key, acc->public_key, 32);
        keys[i].idx = (uint32_t)i;
    }
    qsort(a->by_name, a->count, sizeof(*a->by_name), name_ix_cmp);
    qsort(keys, a->count, sizeof(*keys), key_ix_cmp);
    int rc = NANA_OK;
    char where[96];
    for (size_t i = 1; i < a->count && !rc; i++) {
        const name_ix *p = &a->by_name[i - 1], *e = &a->by_name[i];
        if (name_cmp(p->name, p->len, e->name, e->len) == 0) {
            quoted q = {{0}};
            snprintf(where, sizeof(where), "accounts[%u].name", (unsigned)e->idx);
            rc = bad(where, "%s is also the name of accounts[%u]", quote(&q, e->name, e->len),
                     (unsigned)p->idx);
        }
    }
    for (size_t i = 1; i < a->count && !rc; i++) {
        /* Accounts without a key (certificate login) share the zero key. */
        if (memcmp(keys[i - 1].key, keys[i].key, 32) == 0 &&
            (a->accounts[keys[i].idx].login & NANA_LOGIN_KEY)) {
            snprintf(where, sizeof(where), "accounts[%u].public_key", (unsigned)keys[i].idx);
            rc = bad(where, "the same key as accounts[%u]", (unsigned)keys[i - 1].idx);
        }
    }
    free(keys);
    return rc ? rc : index_fingerprints(a);
}

/* Reads the top-level object into |a|. */
static int parse_top(nana_accounts *a, const nana_json *root, const char *base)
{
    if (root->type != NANA_JSON_OBJECT)
        return nana_err_set(NANA_ERR_INVALID, "the accounts file must hold a JSON object");
    const nana_json *list = NULL;
    for (uint32_t i = 0; i < root->n; i++) {
        const nana_json_member *m = &root->u.members[i];
        const nana_json *v = m->val;
        quoted q = {{0}};
        if (key_is(m, "db_dir")) {
            if (v->type != NANA_JSON_STRING || v->n == 0 || v->n > DB_DIR_MAX ||
                memchr(v->u.str, '\0', v->n))
                return bad("db_dir", "must be a directory path (a string of 1..%d bytes)",
                           DB_DIR_MAX);
            a->db_dir = arena_strndup(a, v->u.str, v->n);
            if (!a->db_dir) return nana_err_set(NANA_ERR_NOMEM, "out of memory reading accounts");
        } else if (key_is(m, "accounts")) {
            list = v;
        } else {
            return bad("top level", "unknown key %s", quote(&q, m->key, m->keylen));
        }
    }
    if (!list) return bad("top level", "\"accounts\" is missing");
    if (list->type != NANA_JSON_ARRAY) return bad("accounts", "must be a list of accounts");
    if (list->n == 0)
        return bad("accounts", "the list is empty, so nobody could log in; refusing it");
    if (list->n > NANA_ACCOUNTS_MAX)
        return bad("accounts", "%u accounts, the limit is %d", (unsigned)list->n,
                   NANA_ACCOUNTS_MAX);
    a->count = list->n;
    a->accounts = arena_alloc(a, a->count * sizeof(*a->accounts));
    if (!a->accounts) return nana_err_set(NANA_ERR_NOMEM, "out of memory reading the accounts");
    for (size_t i = 0; i < a->count; i++) {
        int rc = parse_account(a, i, list->u.items[i], &a->accounts[i], base);
        if (rc) return rc;
    }
    return index_accounts(a);
}

/* nana_accounts_parse, with relative secret files relative to |base| (NULL: cwd). */
static int parse_text(const char *json, size_t len, const char *base, nana_accounts **out)
{
    *out = NULL;
    nana_json_doc *doc = NULL;
    nana_json *root = NULL;
    int rc = nana_json_parse(json, len, 0, MAX_DEPTH, &doc, &root);
    if (rc == NANA_ERR_NOMEM) return rc;
    if (rc) return NANA_ERR_INVALID; /* the parser's message says where the text is wrong */
    nana_accounts *a = accounts_new();
    if (!a) {
        nana_json_doc_free(doc);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory reading the accounts");
    }
    rc = parse_top(a, root, base);
    nana_json_doc_free(doc);
    if (rc) {
        accounts_free(a);
        return rc;
    }
    *out = a;
    return NANA_OK;
}

int nana_accounts_parse(const char *json, size_t len, nana_accounts **out)
{
    return parse_text(json, len, NULL, out);
}

/*
 * Reads and parses |path| into *out (owned by the caller). With
 * |name_path| a parse error's detail starts with the path (file errors
 * always name it).
 */
static int load_file(const char *path, bool name_path, nana_accounts **out)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = nana_file_read(path, "accounts file", NANA_ACCOUNTS_FILE_MAX, &text, &len);
    if (rc) return rc;
    char base[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(base, sizeof(base), "%.*s", slash ? (int)(slash - path) + (slash == path) : 0, path);
    rc = parse_text(text, len, base, out);
    free(text);
    if (rc && name_path) {
        char why[NANA_ERRMSG_MAX];
        snprintf(why, sizeof(why), "%s", nana_errmsg());
        return nana_err_set(rc, "accounts file %s: %s", path, why);
    }
    return rc;
}

int nana_accounts_load(const char *path, nana_accounts **out)
{
    return load_file(path, true, out);
}

int nana_accounts_single(const uint8_t pk[32], const char *name, nana_accounts **out)
{
    *out = NULL;
    if (!name) name = "default";
    size_t len = strlen(name);
    if (!nana_account_name_valid(name, len)) {
        quoted q = {{0}};
        return nana_err_set(NANA_ERR_INVALID,
                            "account name %s: must be 1..%d bytes of "
                            "A-Z a-z 0-9 _ . @ -",
                            quote(&q, name, len), NANA_ACCOUNT_NAME_MAX);
    }
    nana_accounts *a = accounts_new();
    if (!a) return nana_err_set(NANA_ERR_NOMEM, "out of memory making the account");
    a->count = 1;
    a->accounts = arena_alloc(a, sizeof(*a->accounts));
    char *copy = arena_strndup(a, name, len);
    if (!a->accounts || !copy) {
        accounts_free(a);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory making the account");
    }
    nana_account *acc = &a->accounts[0];
    acc->name = copy;
    memcpy(acc->public_key, pk, 32);
    acc->login = NANA_LOGIN_KEY;
    acc->default_methods = true;
    acc->all_dbs = true;
    int rc = index_accounts(a);
    if (rc) {
        accounts_free(a);
        return rc;
    }
    *out = a;
    return NANA_OK;
}

/* ---- certificates ---- */

/* The index entry of fingerprint |fp| of |kind|, or NULL. */
static const fp_ix *find_fp(const nana_accounts *a, uint32_t kind, const uint8_t *fp)
{
    if (a->nfp == 0 || nana_fingerprint_is_zero(fp)) return NULL;
    fp_ix key;
    memset(&key, 0, sizeof(key));
    memcpy(key.fp, fp, NANA_FINGERPRINT_BYTES);
    key.kind = kind;
    size_t lo = 0, hi = a->nfp;
    while (lo < hi) { /* the first entry not below (kind, fp): each is listed once */
        size_t mid = lo + (hi - lo) / 2;
        if (fp_ix_cmp(&a->by_fp[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < a->nfp && a->by_fp[lo].kind == kind &&
        memcmp(a->by_fp[lo].fp, fp, NANA_FINGERPRINT_BYTES) == 0)
        return &a->by_fp[lo];
    return NULL;
}

const nana_account *nana_accounts_find_by_identity(const nana_accounts *a,
                                                   const nana_cert_identity *id)
{
    if (!a || !id || !id->verified) return NULL;
    const fp_ix *by_cert = find_fp(a, FP_CERT, id->cert_sha256);
    const fp_ix *by_spki = find_fp(a, FP_SPKI, id->spki_sha256);
    if (by_cert && by_spki && by_cert->idx != by_spki->idx) {
        (void)nana_err_set(NANA_ERR_PERM,
                           "the client certificate names account %s and its public key "
                           "account %s; refusing both",
                           a->accounts[by_cert->idx].name, a->accounts[by_spki->idx].name);
        return NULL;
    }
    const fp_ix *e = by_cert ? by_cert : by_spki;
    return e ? &a->accounts[e->idx] : NULL;
}

/* True if the list fps[0..n) holds |fp|. */
static bool fp_listed(uint8_t (*fps)[NANA_FINGERPRINT_BYTES], size_t n, const uint8_t *fp)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(fps[i], fp, NANA_FINGERPRINT_BYTES) == 0) return true;
    return false;
}

bool nana_account_names_identity(const nana_account *a, const nana_cert_identity *id)
{
    if (!a || !id || !id->verified) return false;
    return (!nana_fingerprint_is_zero(id->cert_sha256) &&
            fp_listed(a->cert_sha256, a->n_cert_sha256, id->cert_sha256)) ||
           (!nana_fingerprint_is_zero(id->spki_sha256) &&
            fp_listed(a->spki_sha256, a->n_spki_sha256, id->spki_sha256));
}

const char *nana_login_name(nana_login login)
{
    switch (login) {
    case NANA_LOGIN_CERT:
        return "certificate";
    case NANA_LOGIN_KEY_CERT:
        return "key+certificate";
    default:
        return "key";
    }
}

/* ---- questions about one account ---- */

bool nana_account_ip_allowed(const nana_account *a, const struct sockaddr *addr)
{
    for (size_t i = 0; i < a->n_blocked_ips; i++)
        if (nana_cidr_match(&a->blocked_ips[i], addr)) return false;
    if (a->n_allowed_ips == 0) return true;
    for (size_t i = 0; i < a->n_allowed_ips; i++)
        if (nana_cidr_match(&a->allowed_ips[i], addr)) return true;
    return false;
}

bool nana_account_method_listed(const nana_account *a, const char *method, bool *forbidden)
{
    if (forbidden) *forbidden = sorted_has(a->forbidden_methods, a->n_forbidden, method);
    return !a->default_methods && sorted_has(a->allowed_methods, a->n_allowed, method);
}

/* The account's entry for database |db|, or NULL (also when all_dbs). */
static const nana_account_db *find_db(const nana_account *a, const char *db)
{
    if (!db || a->ndbs == 0) return NULL;
    nana_account_db key = {.name = (char *)(uintptr_t)db};
    return bsearch(&key, a->dbs, a->ndbs, sizeof(*a->dbs), db_cmp);
}

bool nana_account_db_allowed(const nana_account *a, const char *db)
{
    return a->all_dbs || find_db(a, db) != NULL;
}

bool nana_account_table_allowed(const nana_account *a, const char *db, const char *table)
{
    if (a->all_dbs) return true;
    const nana_account_db *d = find_db(a, db);
    if (!d) return false;
    return d->all_tables || sorted_has(d->tables, d->ntables, table);
}

/* ---- live reload ---- */

struct nana_accounts_watch {
    char *path;       /* owned */
    char *dir;        /* owned: the directory watched */
    const char *base; /* the file name inside path */
    int ifd, efd;     /* inotify, and the stop eventfd; -1 when not open */
    bool mutexes;     /* mu and reload_mu were made */
    pthread_t thread;
    pthread_mutex_t mu;        /* guards current */
    pthread_mutex_t reload_mu; /* one reload at a time */
    nana_accounts *current;    /* one reference, owned */
    atomic_uint_fast64_t generation;
};

enum { SEEN_CHANGE = 1, SEEN_GONE = 2 };

/* Monotonic milliseconds. */
static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Loads the file; on success swaps it in and counts a generation, on
 * failure keeps the current snapshot. Logs the outcome; returns 0 or the
 * load error (detail in nana_errmsg()).
 */
static int watch_reload(nana_accounts_watch *w)
{
    pthread_mutex_lock(&w->reload_mu);
    nana_accounts *fresh = NULL;
    int rc = load_file(w->path, false, &fresh);
    if (rc) {
        /* A file error names the path; the log line already does. */
        const char *why = nana_errmsg();
        size_t pl = strlen(w->path);
        if (strncmp(why, "accounts file ", 14) == 0 && strncmp(why + 14, w->path, pl) == 0 &&
            strncmp(why + 14 + pl, ": ", 2) == 0)
            why += 14 + pl + 2;
        nana_log(NANA_LOG_WARN, "accounts file %s not reloaded, keeping the last good accounts: %s",
                 w->path, why);
    } else {
        size_t count = fresh->count;
        pthread_mutex_lock(&w->mu);
        nana_accounts *old = w->current;
        w->current = fresh;
        pthread_mutex_unlock(&w->mu);
        atomic_fetch_add(&w->generation, 1);
        nana_log(NANA_LOG_INFO, "accounts file %s reloaded: %zu accounts", w->path, count);
        nana_accounts_unref(old);
    }
    pthread_mutex_unlock(&w->reload_mu);
    return rc;
}

/* Reads every pending inotify event; says whether one concerns the file
 * (SEEN_CHANGE) and whether the directory's watch ended (SEEN_GONE). */
static int drain_events(const nana_accounts_watch *w)
{
    char buf[4096];
    size_t baselen = strlen(w->base);
    int seen = 0;
    for (;;) {
        ssize_t n = read(w->ifd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return seen;
        if (n <= 0) return seen | SEEN_GONE;
        size_t off = 0;
        while (off + sizeof(struct inotify_event) <= (size_t)n) {
            struct inotify_event ev;
            memcpy(&ev, buf + off, sizeof(ev));
            const char *name = buf + off + sizeof(ev);
            if (off + sizeof(ev) + ev.len > (size_t)n) break;
            if (ev.mask & IN_Q_OVERFLOW)
                seen |= SEEN_CHANGE; /* events were lost: look anyway */
            else if (ev.mask & IN_IGNORED)
                seen |= SEEN_GONE;
            else if (ev.len > baselen && memcmp(name, w->base, baselen) == 0 &&
                     name[baselen] == '\0')
                seen |= SEEN_CHANGE;
            off += sizeof(ev) + ev.len;
        }
    }
}

/* The watcher thread: waits for events or the stop signal, debounces, reloads. */
static void *watch_main(void *arg)
{
    nana_accounts_watch *w = arg;
    struct pollfd pfd[2] = {{.fd = w->efd, .events = POLLIN}, {.fd = w->ifd, .events = POLLIN}};
    bool pending = false;
    uint64_t first = 0, due = 0;
    for (;;) {
        int timeout = -1;
        if (pending) {
            uint64_t now = now_ms();
            timeout = due > now ? (int)(due - now) : 0;
        }
        int n = poll(pfd, 2, timeout);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            (void)nana_errno_err(errno, "polling for changes of", w->path);
            nana_log(NANA_LOG_ERROR, "accounts watcher stopped: %s", nana_errmsg());
            break;
        }
        if (pfd[0].revents) break;
        if (pfd[1].revents) {
            int seen = drain_events(w);
            if (seen & SEEN_CHANGE) {
                uint64_t now = now_ms();
                if (!pending) first = now;
                pending = true;
                due = now + DEBOUNCE_MS < first + DELAY_MAX_MS ? now + DEBOUNCE_MS
                                                               : first + DELAY_MAX_MS;
            }
            if (seen & SEEN_GONE) {
                nana_log(NANA_LOG_WARN,
                         "accounts file %s: its directory is no longer watched; "
                         "changes are not seen until a restart",
                         w->path);
                pfd[1].fd = -1;
            }
        }
        if (pending && now_ms() >= due) {
            pending = false;
            (void)watch_reload(w);
        }
    }
    return NULL;
}

/* Frees a watcher whose thread is not running (or was never started). */
static void watch_free(nana_accounts_watch *w)
{
    if (w->ifd >= 0) close(w->ifd);
    if (w->efd >= 0) close(w->efd);
    if (w->mutexes) {
        pthread_mutex_destroy(&w->mu);
        pthread_mutex_destroy(&w->reload_mu);
    }
    nana_accounts_unref(w->current);
    free(w->path);
    free(w->dir);
    free(w);
}

int nana_accounts_watch_start(const char *path, nana_accounts *initial, nana_accounts_watch **out)
{
    *out = NULL;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base) return nana_err_set(NANA_ERR_INVALID, "accounts file %s names no file", path);
    nana_accounts *first = NULL;
    if (initial) {
        first = nana_accounts_ref(initial);
    } else {
        int rc = nana_accounts_load(path, &first);
        if (rc) return rc;
    }
    nana_accounts_watch *w = calloc(1, sizeof(*w));
    if (!w) {
        nana_accounts_unref(first);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory starting the accounts watcher");
    }
    w->ifd = w->efd = -1;
    w->current = first;
    atomic_init(&w->generation, 1);
    w->path = strdup(path);
    if (!slash)
        w->dir = strdup(".");
    else
        w->dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
    int rc;
    if (!w->path || !w->dir) {
        rc = nana_err_set(NANA_ERR_NOMEM, "out of memory starting the accounts watcher");
        goto fail;
    }
    w->base = w->path + (base - path);
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        rc = nana_err_set(NANA_ERR_NOMEM, "cannot make the accounts watcher's lock");
        goto fail;
    }
    if (pthread_mutex_init(&w->reload_mu, NULL) != 0) {
        pthread_mutex_destroy(&w->mu);
        rc = nana_err_set(NANA_ERR_NOMEM, "cannot make the accounts watcher's lock");
        goto fail;
    }
    w->mutexes = true;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd < 0) {
        rc = nana_errno_err(errno, "inotify for", w->dir);
        goto fail;
    }
    uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_ONLYDIR;
    if (inotify_add_watch(w->ifd, w->dir, mask) < 0) {
        if (errno == ENOSPC) /* strerror would say the disk is full */
            rc = nana_err_set(NANA_ERR_FULL,
                              "watching the directory %s: the inotify watch limit "
                              "(fs.inotify.max_user_watches) is reached",
                              w->dir);
        else
            rc = nana_errno_err(errno, "watching the directory", w->dir);
        goto fail;
    }
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        rc = nana_errno_err(errno, "eventfd for the watcher of", path);
        goto fail;
    }
    int err = pthread_create(&w->thread, NULL, watch_main, w);
    if (err) {
        rc = nana_errno_err(err, "starting the watcher thread of", path);
        goto fail;
    }
    *out = w;
    return NANA_OK;
fail:
    watch_free(w);
    return rc;
}

nana_accounts *nana_accounts_watch_current(nana_accounts_watch *w)
{
    pthread_mutex_lock(&w->mu);
    nana_accounts *a = nana_accounts_ref(w->current);
    pthread_mutex_unlock(&w->mu);
    return a;
}

uint64_t nana_accounts_watch_generation(const nana_accounts_watch *w)
{
    return atomic_load(&w->generation);
}

int nana_accounts_watch_reload(nana_accounts_watch *w)
{
    return watch_reload(w);
}

void nana_accounts_watch_stop(nana_accounts_watch *w)
{
    if (!w) return;
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(w->efd, &one, sizeof(one));
    while (n < 0 && errno == EINTR);
    pthread_join(w->thread, NULL);
    watch_free(w);
}
