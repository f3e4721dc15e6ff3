/*
 * nana_accounts.h - who may log in, and what each account may do.
 *
 * Big idea: the accounts are an immutable snapshot, parsed and checked in
 * full before anyone sees it, and shared by reference count. A session
 * takes a reference when it authenticates and keeps using that snapshot;
 * a reload builds a new one and swaps it in, so nobody ever sees half an
 * update and nothing is locked on the request path. A snapshot comes from
 * one public key (one unrestricted account) or from the accounts file, a
 * strict JSON document:
 *
 *   {"db_dir": "/srv/dbs",
 *    "accounts": [{"name": "admin", "public_key": "ssh-ed25519 AAAA...",
 *                  "login": "key" | "certificate" | "key+certificate",
 *                  "client_cert_sha256": ["ab:cd:...", ...],
 *                  "client_spki_sha256": ["sha256/BASE64=", ...],
 *                  "allowed_methods": null | ["get", ...],
 *                  "forbidden_methods": ["clear"],
 *                  "allowed_dbs": null | ["a.db"] | {"a.db": ["data"], "b.db": null},
 *                  "read_only": false,
 *                  "allowed_ips": ["10.0.0.0/8", "::1"], "blocked_ips": ["10.0.0.5"],
 *                  "max_calls_per_sec": 1000,
 *                  "jwt_secret_file": "alice.jwt"}]}
 *
 * An account may name client certificates (mutual TLS) by fingerprint
 * (nana_identity.h): of the certificate, or of its public key. A verified
 * client certificate then selects the account (nana_accounts_find_by_identity),
 * in every door. "login" says how the account logs in on the NanaSQLite
 * door: "key" (the default) answers the Ed25519 challenge; "certificate"
 * is logged in by its verified certificate alone, at connect, and has no
 * public_key; "key+certificate" needs both. An account that logs in by
 * certificate must name one.
 *
 * "jwt_secret_file" names a file whose bytes (one trailing newline
 * dropped; 32..1024 bytes) are the account's HMAC-SHA256 secret for
 * bearer tokens (nana_jwt.h). It is read with the accounts file, each
 * time it is (re)loaded; a relative path is relative to the accounts
 * file's folder. A file that group or others may read or write is
 * refused, as an ssh key is. An account with a secret may log in by
 * token on the gRPC door whatever its "login" says; one without cannot.
 *
 * Unknown keys and wrong types are errors; every message names the place
 * ("accounts[2].allowed_ips[0]: ..."). The accounts file can be watched:
 * a thread reloads it when it changes and keeps the last good snapshot
 * when the new text is refused.
 *
 * Errors: 0 or a negative NANA_ERR_* with a detail in nana_errmsg(); a
 * detail never holds more of a public key than its place.
 */
#ifndef NANA_ACCOUNTS_H
#define NANA_ACCOUNTS_H

#include "auth/nana_identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NANA_ACCOUNTS_FILE_MAX ((size_t)1024 * 1024) /* bytes in an accounts file */
#define NANA_ACCOUNTS_MAX      10000                 /* accounts in one file */
#define NANA_ACCOUNTS_LIST_MAX 1000                  /* entries in any one list or map */
#define NANA_ACCOUNT_NAME_MAX  64                    /* bytes in an account name */
#define NANA_METHOD_NAME_MAX   64                    /* bytes in a method name */
#define NANA_TABLE_NAME_MAX    128                   /* bytes in a table name */
#define NANA_DB_NAME_MAX       255                   /* bytes in a database name */
#define NANA_JWT_SECRET_MIN    32                    /* bytes of a jwt_secret_file's secret */
#define NANA_JWT_SECRET_MAX    1024

/* ---- CIDR rules (cidr.c) ---- */

/*
 * An address rule: |bits| leading bits of |addr| (AF_INET uses addr[0..4)).
 * Host bits beyond the prefix are zero. An IPv4-mapped IPv6 rule
 * (::ffff:a.b.c.d/n, n >= 96) is kept as the IPv4 rule a.b.c.d/(n-96).
 */
typedef struct nana_cidr {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t bits;   /* prefix length: 0..32 or 0..128 */
    uint8_t addr[16];
} nana_cidr;

/*
 * Parses "a.b.c.d", "a.b.c.d/n" (n 0..32), an IPv6 address, or one with
 * "/n" (n 0..128; decimal without leading zeros). |text| need not be
 * NUL-terminated. Host bits set in the address are accepted and cleared.
 * Returns 0 or NANA_ERR_INVALID.
 */
int nana_cidr_parse(const char *text, size_t len, nana_cidr *out);

/*
 * True if |addr| (AF_INET or AF_INET6; the port is ignored) is inside |c|.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is matched as the IPv4
 * address a.b.c.d, so it matches IPv4 rules and no IPv6 rule. Any other
 * family (or NULL) matches nothing.
 */
bool nana_cidr_match(const nana_cidr *c, const struct sockaddr *addr);

/* ---- accounts (accounts.c) ---- */

/* One database an account may use. */
typedef struct nana_account_db {
    char *name;
    bool all_tables; /* null in the map form, or the list form: every table */
    char **tables;   /* else only these NanaSQLite tables (sorted, unique) */
    size_t ntables;
} nana_account_db;

/*
 * How an account logs in on the NanaSQLite door: bits, so a door asks
 * (login & NANA_LOGIN_KEY) for "a signature is needed" and
 * (login & NANA_LOGIN_CERT) for "a certificate that names it is needed".
 */
typedef enum nana_login {
    NANA_LOGIN_KEY = 1,                                     /* "key": the Ed25519 challenge */
    NANA_LOGIN_CERT = 2,                                    /* "certificate": mutual TLS alone */
    NANA_LOGIN_KEY_CERT = NANA_LOGIN_KEY | NANA_LOGIN_CERT, /* "key+certificate": both */
} nana_login;

/* One account. All memory belongs to the snapshot that holds it. */
typedef struct nana_account {
    char *name;
    uint8_t public_key[32]; /* all zero when login is NANA_LOGIN_CERT (no key) */
    nana_login login;       /* default NANA_LOGIN_KEY */
    uint8_t (*cert_sha256)[NANA_FINGERPRINT_BYTES]; /* client certificates naming it */
    size_t n_cert_sha256;
    uint8_t (*spki_sha256)[NANA_FINGERPRINT_BYTES]; /* client public keys (pins) naming it */
    size_t n_spki_sha256;
    bool read_only;
    bool default_methods;   /* allowed_methods was null/absent: the server's default */
    char **allowed_methods; /* else only these (sorted, unique) */
    size_t n_allowed;
    char **forbidden_methods; /* sorted, unique */
    size_t n_forbidden;
    bool all_dbs;         /* allowed_dbs null/absent: every database */
    nana_account_db *dbs; /* else only these (sorted by name, unique) */
    size_t ndbs;
    nana_cidr *allowed_ips; /* empty: any address */
    size_t n_allowed_ips;
    nana_cidr *blocked_ips; /* a match refuses, whatever allowed_ips says */
    size_t n_blocked_ips;
    double max_calls_per_sec; /* 0 = the server's default */
    uint8_t *jwt_secret;      /* bearer tokens' HMAC secret (wiped at free), or NULL */
    size_t jwt_secret_len;    /* NANA_JWT_SECRET_MIN..MAX bytes, 0 without */
} nana_account;

/* An immutable, reference-counted set of accounts (a snapshot). */
typedef struct nana_accounts nana_accounts;

/*
 * Parses the accounts JSON text (|len| bytes; no size limit here, the
 * count and list limits above apply); a relative jwt_secret_file is
 * relative to the working directory. On success *out is a new snapshot
 * with one reference, owned by the caller (nana_accounts_unref). Returns 0,
 * NANA_ERR_INVALID (not JSON, not the format, a duplicate name or key;
 * the detail names the place) or NANA_ERR_NOMEM; *out is NULL on failure.
 */
int nana_accounts_parse(const char *json, size_t len, nana_accounts **out);

/*
 * Reads and parses the accounts file at |path| (at most
 * NANA_ACCOUNTS_FILE_MAX bytes). As nana_accounts_parse, plus the file
 * errors of nana_file_read (NANA_ERR_NOTFOUND, NANA_ERR_PERM, NANA_ERR_IO,
 * NANA_ERR_INVALID for an empty, too large or non-regular file). Details
 * start with the path.
 */
int nana_accounts_load(const char *path, nana_accounts **out);

/*
 * A snapshot of one unrestricted account (the nana_public.pub mode): the
 * server's default methods, every database, any address, no rate of its
 * own. |name| NULL means "default"; otherwise it must be a valid account
 * name (NANA_ERR_INVALID). *out as nana_accounts_parse.
 */
int nana_accounts_single(const uint8_t pk[32], const char *name, nana_accounts **out);

/* Takes one more reference to |a| and returns it (NULL-safe). */
nana_accounts *nana_accounts_ref(nana_accounts *a);

/* Drops one reference; the last one frees the snapshot. NULL-safe; any thread. */
void nana_accounts_unref(nana_accounts *a);

/* Number of accounts (at least 1 in any snapshot). */
size_t nana_accounts_count(const nana_accounts *a);

/* Account |i| (< count) in file order, owned by the snapshot; NULL if out of range. */
const nana_account *nana_accounts_at(const nana_accounts *a, size_t i);

/* The account named |name| (|len| bytes, not NUL-terminated) or NULL; O(log n). */
const nana_account *nana_accounts_find(const nana_accounts *a, const char *name, size_t len);

/*
 * count * 32 bytes: the public keys back to back in account order (for
 * nana_challenge_verify_any), owned by the snapshot. An account that logs
 * in by certificate alone has 32 zero bytes there, which never verify.
 */
const uint8_t *nana_accounts_keys(const nana_accounts *a);

/*
 * The account a verified client certificate names: the one whose
 * client_cert_sha256 holds id->cert_sha256, or whose client_spki_sha256
 * holds id->spki_sha256 (each fingerprint names at most one account in a
 * snapshot). NULL when |id| is NULL or not verified, when no account names
 * it, or when its certificate names one account and its public key another:
 * that is refused rather than guessed, with NANA_ERR_PERM and both names in
 * nana_errmsg() for the log. O(log n); owned by the snapshot. Whether the
 * account may log in this way is the caller's question (login, addresses).
 */
const nana_account *nana_accounts_find_by_identity(const nana_accounts *a,
                                                   const nana_cert_identity *id);

/* The file's "db_dir", owned by the snapshot; NULL when it had none. */
const char *nana_accounts_db_dir(const nana_accounts *a);

/* True if |name| (|len| bytes) is 1..64 bytes of [A-Za-z0-9_.@-]. */
bool nana_account_name_valid(const char *name, size_t len);

/*
 * True if the account may connect from |addr|: no blocked rule matches,
 * and the allow list is empty or one of its rules matches (blocked wins).
 */
bool nana_account_ip_allowed(const nana_account *a, const struct sockaddr *addr);

/*
 * Looks |method| up in the account's lists: *forbidden (if not NULL) is set
 * to whether forbidden_methods names it; returns true if allowed_methods
 * names it (false when default_methods: the server's policy decides).
 */
bool nana_account_method_listed(const nana_account *a, const char *method, bool *forbidden);

/*
 * True if |id| is a verified certificate that |a| names (by either
 * fingerprint): what a door checks for a "key+certificate" login after
 * the signature, and again for any certificate login after a reload.
 */
bool nana_account_names_identity(const nana_account *a, const nana_cert_identity *id);

/* The word "login" takes for |login| ("key", "certificate", "key+certificate"). */
const char *nana_login_name(nana_login login);

/* True if the account may open database |db| (all_dbs, or |db| is listed). */
bool nana_account_db_allowed(const nana_account *a, const char *db);

/* True if the account may use NanaSQLite table |table| of database |db|. */
bool nana_account_table_allowed(const nana_account *a, const char *db, const char *table);

/* ---- live reload (accounts.c) ---- */

/*
 * A watcher thread on the accounts file's directory (inotify; editors
 * replace files by rename, so the directory is watched and events are
 * filtered by the file name). Changes are debounced (about 50 ms after the
 * last event, at most 500 ms after the first), then the file is reloaded:
 * on success the snapshot is swapped and the generation goes up (logged at
 * INFO); on failure, including a deleted file, the last good snapshot stays
 * and the reason is logged at WARN.
 */
typedef struct nana_accounts_watch nana_accounts_watch;

/*
 * Starts watching |path|. The watcher takes its own reference to |initial|
 * (the caller keeps its own); NULL loads |path| now and fails as
 * nana_accounts_load does. *out is owned by the caller
 * (nana_accounts_watch_stop). Returns 0, a load error, NANA_ERR_NOMEM, or
 * the inotify/eventfd/thread failure (NANA_ERR_NOTFOUND when the
 * directory does not exist, NANA_ERR_FULL at the inotify watch limit,
 * NANA_ERR_IO, ...). A change between the caller's load of
 * |initial| and this call is not seen until the next one.
 */
int nana_accounts_watch_start(const char *path, nana_accounts *initial, nana_accounts_watch **out);

/* The current snapshot: a new reference owned by the caller (any thread). */
nana_accounts *nana_accounts_watch_current(nana_accounts_watch *w);

/* 1 at start, +1 per successful reload (atomic; any thread). */
uint64_t nana_accounts_watch_generation(const nana_accounts_watch *w);

/*
 * Reloads now on the calling thread, by the watcher's rules (swap and
 * count on success, keep and log on failure). Returns 0 or the load error.
 */
int nana_accounts_watch_reload(nana_accounts_watch *w);

/* Stops and joins the thread, drops the watcher's reference, frees |w|. NULL-safe. */
void nana_accounts_watch_stop(nana_accounts_watch *w);

#endif
